#include "rpc/internal/task_request_decoder.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace crunch::rpc::internal {
namespace {

// TaskRequest.payload: field 2, wire type 2 (length-delimited).
constexpr uint64_t kPayloadField = 2;
// TaskBatch.tasks: field 1, repeated TaskRequest.
constexpr uint64_t kBatchTasksField = 1;
constexpr uint64_t kWireVarint = 0;
constexpr uint64_t kWireFixed64 = 1;
constexpr uint64_t kWireLengthDelimited = 2;
constexpr uint64_t kWireFixed32 = 5;
// protobuf reads a tag as at most 5 varint bytes and a length as a positive
// int32; anything beyond goes to protobuf's own parser.
constexpr int kMaxTagBytes = 5;
constexpr int kMaxLengthBytes = 5;
constexpr int kMaxVarintBytes = 10;
constexpr uint64_t kMaxLength = INT32_MAX - 64;

// A read position in a sequence of slices. A small value: copying it marks
// a position to come back to.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>& slices) : slices_(&slices) {
    for (const grpc::Slice& s : slices) remaining_ += s.size();
    SkipEmpty();
  }

  size_t remaining() const { return remaining_; }

  // The next `n` bytes (REQUIRES: n <= remaining()) as a cursor of their own.
  SliceCursor Prefix(size_t n) const {
    SliceCursor prefix = *this;
    prefix.remaining_ = n;
    return prefix;
  }

  bool ReadVarint(int max_bytes, uint64_t* value) {
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (remaining_ == 0) return false;
      const uint8_t byte = Current()[0];
      Advance(1);
      v |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if ((byte & 0x80) == 0) {
        *value = v;
        return true;
      }
    }
    return false;  // Longer than protobuf accepts.
  }

  bool Skip(size_t n) {
    if (n > remaining_) return false;
    while (n > 0) {
      const size_t step = std::min(n, Available());
      Advance(step);
      n -= step;
    }
    return true;
  }

  // Appends the next `n` bytes (REQUIRES: n <= remaining()) to *out.
  void AppendTo(size_t n, std::string* out) {
    while (n > 0) {
      const size_t step = std::min(n, Available());
      out->append(reinterpret_cast<const char*>(Current()), step);
      Advance(step);
      n -= step;
    }
  }

 private:
  const uint8_t* Current() const { return (*slices_)[index_].begin() + offset_; }
  size_t Available() const { return (*slices_)[index_].size() - offset_; }
  void Advance(size_t n) {
    offset_ += n;
    remaining_ -= n;
    if (offset_ == (*slices_)[index_].size()) {
      ++index_;
      offset_ = 0;
      SkipEmpty();
    }
  }
  void SkipEmpty() {
    while (index_ < slices_->size() && (*slices_)[index_].size() == 0) ++index_;
  }

  const std::vector<grpc::Slice>* slices_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t remaining_ = 0;
};

// Readies the fresh memory of a large payload string for the copy: asks for
// transparent huge pages over the 2 MiB-aligned part of [data, data + size)
// when the string is its own mapping (kHugePagesMinBytes), then faults the
// whole pages in with one system call, not one page fault per 4 KiB page as
// the copy first touches them. A fresh 64 MiB allocation is otherwise 16384
// faults, and on a virtual machine a page touched for the first time can cost
// the hypervisor's work as well: on the benchmark machine (docs/benchmarks.md,
// suite 6) filling a fresh 64 MiB string took about 320 ms with 4 KiB faults,
// 180 ms pre-faulted and 20 ms in huge pages. Both calls are hints: where THP
// is off ("never") or the kernel predates MADV_POPULATE_WRITE (5.14), the
// copy faults the pages in as before.
void PrepareForCopy(char* data, size_t size) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  constexpr uintptr_t kHugePage = 2 << 20;
  const auto start = reinterpret_cast<uintptr_t>(data);
  const uintptr_t huge_begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t huge_end = (start + size) & ~(kHugePage - 1);
  if (size >= kHugePagesMinBytes && huge_end > huge_begin) {
    (void)::madvise(reinterpret_cast<void*>(huge_begin), huge_end - huge_begin, MADV_HUGEPAGE);
  }
  const uintptr_t begin = (start + page - 1) & ~(page - 1);
  const uintptr_t end = (start + size) & ~(page - 1);
  if (end > begin) {
    (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
  }
}

// protobuf's parser over the bytes under `cursor`: the path for whatever the
// scan leaves to it.
template <typename Message>
bool ParseWhole(SliceCursor cursor, Message* out) {
  std::string bytes;
  bytes.reserve(cursor.remaining());
  cursor.AppendTo(cursor.remaining(), &bytes);
  return out->ParseFromString(bytes);
}

// One field of a message as the scan sees it: where it starts (its tag), its
// number and wire type, and for a length-delimited field, its value.
struct Field {
  SliceCursor start;
  uint64_t number = 0;
  uint64_t wire_type = 0;
  std::optional<SliceCursor> value;
};

// Walks the fields at the top level of the message under `cursor`, calling
// on_field(const Field&, size_t bytes) for each, `bytes` being the whole
// field's size (tag included). Returns false, having stopped, at what the
// scan leaves to protobuf's parser (a group, a varint that does not end, a
// length past the end of the message, a field number of 0).
template <typename OnField>
bool ScanFields(SliceCursor cursor, OnField on_field) {
  while (cursor.remaining() > 0) {
    Field field{.start = cursor};
    uint64_t tag = 0;
    if (!cursor.ReadVarint(kMaxTagBytes, &tag) || tag > UINT32_MAX || (tag >> 3) == 0) {
      return false;
    }
    field.number = tag >> 3;
    field.wire_type = tag & 7;
    bool ok = false;
    switch (field.wire_type) {
      case kWireVarint: {
        uint64_t ignored = 0;
        ok = cursor.ReadVarint(kMaxVarintBytes, &ignored);
        break;
      }
      case kWireFixed64:
        ok = cursor.Skip(8);
        break;
      case kWireFixed32:
        ok = cursor.Skip(4);
        break;
      case kWireLengthDelimited: {
        uint64_t length = 0;
        ok = cursor.ReadVarint(kMaxLengthBytes, &length) && length <= kMaxLength &&
             length <= cursor.remaining();
        if (ok) {
          field.value = cursor.Prefix(length);
          cursor.Skip(length);
        }
        break;
      }
      default:  // Groups (3, 4) and the invalid wire types 6 and 7.
        break;
    }
    if (!ok) return false;
    on_field(field, field.start.remaining() - cursor.remaining());
  }
  return true;
}

// DecodeTaskRequest over the message under `message`.
bool DecodeRequestAt(SliceCursor message, uint64_t max_payload_bytes, crunch::v1::TaskRequest* out,
                     uint64_t* oversized_payload_bytes, DecodePath* path) {
  *path = DecodePath::kWholeToProtobuf;
  *oversized_payload_bytes = 0;
  std::string others;  // Every field but the payload, as received.
  std::optional<SliceCursor> payload;
  const bool scanned = ScanFields(message, [&](const Field& field, size_t bytes) {
    if (field.number == kPayloadField && field.value.has_value()) {
      payload = field.value;  // A later payload replaces this one.
      return;
    }
    SliceCursor copy_from = field.start;
    copy_from.AppendTo(bytes, &others);
  });
  if (!scanned) {
    out->Clear();
    return ParseWhole(message, out);
  }
  *path = DecodePath::kScanned;
  if (!out->ParseFromString(others)) return false;
  if (payload.has_value() && payload->remaining() > max_payload_bytes) {
    *oversized_payload_bytes = payload->remaining();
  } else if (payload.has_value()) {
    const size_t size = payload->remaining();
    std::string bytes;
    bytes.reserve(size);
    if (size >= kPrefaultMinBytes) PrepareForCopy(bytes.data(), size);
    payload->AppendTo(size, &bytes);
    out->set_payload(std::move(bytes));
  }
  return true;
}

}  // namespace

bool DecodeTaskRequest(const grpc::ByteBuffer& buffer, uint64_t max_payload_bytes,
                       crunch::v1::TaskRequest* out, uint64_t* oversized_payload_bytes,
                       DecodePath* path) {
  DecodePath ignored_path;
  if (path == nullptr) path = &ignored_path;
  *path = DecodePath::kWholeToProtobuf;
  *oversized_payload_bytes = 0;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  return DecodeRequestAt(SliceCursor(slices), max_payload_bytes, out, oversized_payload_bytes,
                         path);
}

bool DecodeTaskBatch(const grpc::ByteBuffer& buffer, uint64_t max_payload_bytes,
                     std::vector<DecodedTask>* out, DecodePath* path) {
  DecodePath ignored_path;
  if (path == nullptr) path = &ignored_path;
  *path = DecodePath::kWholeToProtobuf;
  out->clear();
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  const SliceCursor message(slices);
  bool tasks_ok = true;
  bool all_scanned = true;
  const bool scanned = ScanFields(message, [&](const Field& field, size_t) {
    // TaskBatch.tasks (1, length-delimited); anything else is a field this
    // version does not know, which protobuf would keep and crunchd ignores.
    if (!tasks_ok || field.number != kBatchTasksField || !field.value.has_value()) return;
    DecodedTask& task = out->emplace_back();
    DecodePath task_path = DecodePath::kScanned;
    tasks_ok = DecodeRequestAt(*field.value, max_payload_bytes, &task.request,
                               &task.oversized_payload_bytes, &task_path);
    all_scanned = all_scanned && task_path == DecodePath::kScanned;
  });
  if (scanned) {
    if (!tasks_ok) return false;  // protobuf's verdict on that task, so on the batch.
    *path = all_scanned ? DecodePath::kScanned : DecodePath::kWholeToProtobuf;
    return true;
  }
  out->clear();
  crunch::v1::TaskBatch batch;
  if (!ParseWhole(message, &batch)) return false;
  for (crunch::v1::TaskRequest& request : *batch.mutable_tasks()) {
    out->push_back(DecodedTask{.request = std::move(request), .oversized_payload_bytes = 0});
  }
  return true;
}

}  // namespace crunch::rpc::internal
