#include "rpc/internal/task_request_decoder.h"

#include <grpcpp/impl/codegen/proto_utils.h>
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

// protobuf's parser over the whole message: the path for whatever the scan
// leaves to it.
bool ParseWhole(const grpc::ByteBuffer& buffer, crunch::v1::TaskRequest* out) {
  out->Clear();
  grpc::ByteBuffer copy(buffer);  // Shares the slices; Deserialize clears it.
  return grpc::SerializationTraits<crunch::v1::TaskRequest>::Deserialize(&copy, out).ok();
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
  SliceCursor cursor(slices);
  std::string others;  // Every field but the payload, as received.
  std::optional<SliceCursor> payload_at;
  uint64_t payload_size = 0;
  while (cursor.remaining() > 0) {
    const SliceCursor field_start = cursor;
    uint64_t tag = 0;
    if (!cursor.ReadVarint(kMaxTagBytes, &tag) || tag > UINT32_MAX || (tag >> 3) == 0) {
      return ParseWhole(buffer, out);
    }
    bool ok = false;
    switch (tag & 7) {
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
        if (ok && (tag >> 3) == kPayloadField) {
          payload_at = cursor;  // A later payload replaces this one.
          payload_size = length;
          cursor.Skip(length);
          continue;
        }
        ok = ok && cursor.Skip(length);
        break;
      }
      default:  // Groups (3, 4) and the invalid wire types 6 and 7.
        break;
    }
    if (!ok) return ParseWhole(buffer, out);
    SliceCursor copy_from = field_start;
    copy_from.AppendTo(field_start.remaining() - cursor.remaining(), &others);
  }
  *path = DecodePath::kScanned;
  if (!out->ParseFromString(others)) return false;
  if (payload_at.has_value() && payload_size > max_payload_bytes) {
    *oversized_payload_bytes = payload_size;
  } else if (payload_at.has_value()) {
    std::string payload;
    payload.reserve(payload_size);
    if (payload_size >= kPrefaultMinBytes) PrepareForCopy(payload.data(), payload_size);
    payload_at->AppendTo(payload_size, &payload);
    out->set_payload(std::move(payload));
  }
  return true;
}

}  // namespace crunch::rpc::internal
