#include "ipc/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ipc/internal/posix_error.h"

namespace crunch::ipc {
namespace {

constexpr uint64_t kPageBytes = 4096;

constexpr uint64_t AlignUp(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

absl::Status Inconsistent(absl::string_view field, uint64_t found, uint64_t expected) {
  return absl::FailedPreconditionError(absl::StrCat("segment header is inconsistent: ", field,
                                                    " is ", found, ", the layout needs ", expected,
                                                    "; the segment is corrupt"));
}

}  // namespace

absl::StatusOr<SegmentLayout> ComputeSegmentLayout(const SegmentOptions& options) {
  if (options.worker_slots < 1 || options.worker_slots > kMaxWorkerSlots) {
    return absl::InvalidArgumentError(absl::StrCat("worker_slots must be in 1..", kMaxWorkerSlots,
                                                   ", got ", options.worker_slots));
  }
  if (options.ring_capacity < kMinRingCapacity || options.ring_capacity > kMaxRingCapacity ||
      !IsPowerOfTwo(options.ring_capacity)) {
    return absl::InvalidArgumentError(absl::StrCat("ring_capacity must be a power of two in ",
                                                   kMinRingCapacity, "..", kMaxRingCapacity,
                                                   ", got ", options.ring_capacity));
  }
  if (options.arena_bytes < kMinArenaBytes || options.arena_bytes > kMaxArenaBytes) {
    return absl::InvalidArgumentError(absl::StrCat("arena_bytes must be in ", kMinArenaBytes, "..",
                                                   kMaxArenaBytes, ", got ", options.arena_bytes));
  }
  SegmentLayout layout;
  layout.worker_slots = options.worker_slots;
  layout.ring_capacity = options.ring_capacity;
  layout.slots_offset = AlignUp(sizeof(SegmentHeader), kFalseSharingRange);
  layout.descriptors_offset =
      AlignUp(layout.slots_offset + uint64_t{options.worker_slots} * sizeof(SlotControl),
              kFalseSharingRange);
  const uint64_t descriptor_bytes =
      uint64_t{options.worker_slots} * 2 * options.ring_capacity * sizeof(Descriptor);
  layout.arena_offset = AlignUp(layout.descriptors_offset + descriptor_bytes, kPageBytes);
  layout.arena_bytes = AlignUp(options.arena_bytes, kPageBytes);
  layout.total_bytes = layout.arena_offset + layout.arena_bytes;
  return layout;
}

absl::StatusOr<Segment> Segment::Create(const SegmentOptions& options) {
  absl::StatusOr<SegmentLayout> layout = ComputeSegmentLayout(options);
  if (!layout.ok()) return layout.status();

  UniqueFd fd(::memfd_create("crunchd-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return internal::ErrnoError("memfd_create(crunchd-segment)");
  if (::ftruncate(fd.get(), static_cast<off_t>(layout->total_bytes)) != 0) {
    return internal::ErrnoError(absl::StrCat("ftruncate(segment, ", layout->total_bytes, ")"));
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return internal::ErrnoError("fcntl(segment, F_ADD_SEALS)");
  }
  void* base =
      ::mmap(nullptr, layout->total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) {
    return internal::ErrnoError(absl::StrCat("mmap(segment, ", layout->total_bytes, " bytes)"));
  }

  // A fresh memfd reads as zeros: every ring is empty and every slot free.
  SegmentHeader header{};
  header.magic = kSegmentMagic;
  header.layout_version = kSegmentLayoutVersion;
  header.header_bytes = sizeof(SegmentHeader);
  header.descriptor_bytes = sizeof(Descriptor);
  header.slot_bytes = sizeof(SlotControl);
  header.worker_slots = layout->worker_slots;
  header.ring_capacity = layout->ring_capacity;
  header.slots_offset = layout->slots_offset;
  header.descriptors_offset = layout->descriptors_offset;
  header.arena_offset = layout->arena_offset;
  header.arena_bytes = layout->arena_bytes;
  header.total_bytes = layout->total_bytes;
  std::memcpy(base, &header, sizeof(header));
  return Segment(std::move(fd), static_cast<std::byte*>(base), *layout);
}

absl::StatusOr<Segment> Segment::Attach(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return internal::ErrnoError(absl::StrCat("fstat(segment fd ", fd, ")"));
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < sizeof(SegmentHeader)) {
    return absl::FailedPreconditionError(absl::StrCat("not a crunchd segment: fd ", fd, " holds ",
                                                      file_bytes, " bytes, less than the ",
                                                      sizeof(SegmentHeader), "-byte header"));
  }
  // Read the header by copy before mapping anything: it decides the mapping size.
  SegmentHeader header;
  if (::pread(fd, &header, sizeof(header), 0) != static_cast<ssize_t>(sizeof(header))) {
    return internal::ErrnoError(absl::StrCat("pread(segment fd ", fd, ", header)"));
  }
  if (header.magic != kSegmentMagic) {
    return absl::FailedPreconditionError(
        absl::StrFormat("not a crunchd segment: fd %d has magic 0x%016x, expected 0x%016x", fd,
                        header.magic, kSegmentMagic));
  }
  if (header.layout_version != kSegmentLayoutVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "segment layout version ", header.layout_version, ", this build understands version ",
        kSegmentLayoutVersion,
        ": the daemon and this worker come from different builds of crunchd; restart crunchd so "
        "both come from the same install"));
  }
  if (header.header_bytes != sizeof(SegmentHeader)) {
    return Inconsistent("header_bytes", header.header_bytes, sizeof(SegmentHeader));
  }
  if (header.descriptor_bytes != sizeof(Descriptor)) {
    return Inconsistent("descriptor_bytes", header.descriptor_bytes, sizeof(Descriptor));
  }
  if (header.slot_bytes != sizeof(SlotControl)) {
    return Inconsistent("slot_bytes", header.slot_bytes, sizeof(SlotControl));
  }
  absl::StatusOr<SegmentLayout> layout =
      ComputeSegmentLayout({header.worker_slots, header.ring_capacity, header.arena_bytes});
  if (!layout.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("segment header is inconsistent: ", layout.status().message()));
  }
  if (header.slots_offset != layout->slots_offset) {
    return Inconsistent("slots_offset", header.slots_offset, layout->slots_offset);
  }
  if (header.descriptors_offset != layout->descriptors_offset) {
    return Inconsistent("descriptors_offset", header.descriptors_offset,
                        layout->descriptors_offset);
  }
  if (header.arena_offset != layout->arena_offset) {
    return Inconsistent("arena_offset", header.arena_offset, layout->arena_offset);
  }
  if (header.arena_bytes != layout->arena_bytes) {
    return Inconsistent("arena_bytes", header.arena_bytes, layout->arena_bytes);
  }
  if (header.total_bytes != layout->total_bytes) {
    return Inconsistent("total_bytes", header.total_bytes, layout->total_bytes);
  }
  if (file_bytes != layout->total_bytes) {
    return Inconsistent("the file size", file_bytes, layout->total_bytes);
  }
  void* base = ::mmap(nullptr, layout->total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    return internal::ErrnoError(absl::StrCat("mmap(segment, ", layout->total_bytes, " bytes)"));
  }
  return Segment(UniqueFd(), static_cast<std::byte*>(base), *layout);
}

Segment::Segment(Segment&& other) noexcept
    : fd_(std::move(other.fd_)),
      base_(std::exchange(other.base_, nullptr)),
      layout_(other.layout_) {}

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    Unmap();
    fd_ = std::move(other.fd_);
    base_ = std::exchange(other.base_, nullptr);
    layout_ = other.layout_;
  }
  return *this;
}

Segment::~Segment() { Unmap(); }

void Segment::Unmap() noexcept {
  if (base_ != nullptr) ::munmap(base_, layout_.total_bytes);
  base_ = nullptr;
}

SlotControl* Segment::slot(uint32_t slot) const noexcept {
  return reinterpret_cast<SlotControl*>(base_ + layout_.slots_offset) + slot;
}

Descriptor* Segment::request_slots(uint32_t slot) const noexcept {
  return reinterpret_cast<Descriptor*>(base_ + layout_.descriptors_offset) +
         uint64_t{slot} * 2 * layout_.ring_capacity;
}

Descriptor* Segment::completion_slots(uint32_t slot) const noexcept {
  return request_slots(slot) + layout_.ring_capacity;
}

}  // namespace crunch::ipc
