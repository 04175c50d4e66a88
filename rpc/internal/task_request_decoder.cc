#include "rpc/internal/task_request_decoder.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace crunch::rpc::internal {
namespace {

// TaskRequest.payload: field 2, wire type 2 (length-delimited).
constexpr uint64_t kPayloadField = 2;
// TaskRequest.params: field 3, a map entry each (key 1, value 2).
constexpr uint64_t kParamsField = 3;
constexpr uint64_t kParamKeyField = 1;
constexpr uint64_t kParamValueField = 2;
// TaskBatch.tasks: field 1, repeated TaskRequest.
constexpr uint64_t kBatchTasksField = 1;
constexpr uint64_t kWireVarint = 0;
constexpr uint64_t kWireFixed64 = 1;
constexpr uint64_t kWireLengthDelimited = 2;
constexpr uint64_t kWireStartGroup = 3;
constexpr uint64_t kWireEndGroup = 4;
constexpr uint64_t kWireFixed32 = 5;
// protobuf's default recursion limit, which groups count against.
constexpr int kMaxGroupDepth = 100;
// protobuf reads a tag as at most 5 varint bytes and a length as a positive
// int32; anything beyond goes to protobuf's own parser.
constexpr int kMaxTagBytes = 5;
constexpr int kMaxLengthBytes = 5;
constexpr int kMaxVarintBytes = 10;
constexpr uint64_t kMaxLength = INT32_MAX - 64;
// A message up to this size whose scan found nothing over a limit goes to
// protobuf's parser whole (from its one slice, or copied into one string):
// cheaper than taking it apart, and at this size protobuf's way of copying a
// payload costs nothing to speak of.
constexpr size_t kParseWholeMaxBytes = 64 << 10;

// A read position in a sequence of slices. A small value: copying it marks
// a position to come back to.
class SliceCursor {
 public:
  SliceCursor(const grpc::Slice* slices, size_t count) : slices_(slices), count_(count) {
    for (size_t i = 0; i < count; ++i) remaining_ += slices[i].size();
    SkipEmpty();
  }

  size_t remaining() const { return remaining_; }

  // The next `n` bytes (REQUIRES: n <= remaining()) as a cursor of their own.
  SliceCursor Prefix(size_t n) const {
    SliceCursor prefix = *this;
    prefix.remaining_ = n;
    return prefix;
  }

  // The bytes left, if they are all in one slice; null otherwise.
  const uint8_t* Contiguous() const {
    if (remaining_ == 0) return reinterpret_cast<const uint8_t*>("");
    return remaining_ <= Available() ? Current() : nullptr;
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
  const uint8_t* Current() const { return slices_[index_].begin() + offset_; }
  size_t Available() const { return slices_[index_].size() - offset_; }
  void Advance(size_t n) {
    offset_ += n;
    remaining_ -= n;
    if (offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
      SkipEmpty();
    }
  }
  void SkipEmpty() {
    while (index_ < count_ && slices_[index_].size() == 0) ++index_;
  }

  const grpc::Slice* slices_;
  size_t count_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t remaining_ = 0;
};

// Readies the fresh memory of a large payload string for the copy: asks for
// transparent huge pages over the 2 MiB-aligned part of [data, data + size),
// then faults the whole pages in with one system call, not one page fault per
// 4 KiB page as the copy first touches them. A fresh 64 MiB allocation is
// otherwise 16384 faults, and on a virtual machine a page touched for the
// first time can cost the hypervisor's work as well: on the benchmark machine
// (docs/benchmarks.md, suite 6) filling a fresh 64 MiB string took about 320 ms
// with 4 KiB faults, 180 ms pre-faulted and 20 ms in huge pages. Both calls are
// hints: where THP is off ("never") or the kernel predates
// MADV_POPULATE_WRITE (5.14), the copy faults the pages in as before.
void PrepareForCopy(char* data, size_t size) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  constexpr uintptr_t kHugePage = 2 << 20;
  const auto start = reinterpret_cast<uintptr_t>(data);
  const uintptr_t huge_begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t huge_end = (start + size) & ~(kHugePage - 1);
  if (huge_end > huge_begin) {
    (void)::madvise(reinterpret_cast<void*>(huge_begin), huge_end - huge_begin, MADV_HUGEPAGE);
  }
  const uintptr_t begin = (start + page - 1) & ~(page - 1);
  const uintptr_t end = (start + size) & ~(page - 1);
  if (end > begin) {
    (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
  }
}

// protobuf's parser over the whole of the bytes under `cursor`: for a small
// message measured within the limits, and for what the scan cannot take apart.
template <typename Message>
bool ParseWhole(SliceCursor cursor, Message* out) {
  if (const uint8_t* data = cursor.Contiguous(); data != nullptr) {
    return out->ParseFromArray(data, static_cast<int>(cursor.remaining()));
  }
  std::string bytes;
  bytes.reserve(cursor.remaining());
  cursor.AppendTo(cursor.remaining(), &bytes);
  return out->ParseFromString(bytes);
}

// Reads a field's tag. False at what protobuf's parser refuses too: a tag
// that does not end within 5 bytes, or of field number 0. As in protobuf, a
// tag is 32 bits: a fifth byte's bits past them are dropped (the fuzz target
// found a batch protobuf accepted that way).
bool ReadTag(SliceCursor* cursor, uint64_t* number, uint64_t* wire_type) {
  uint64_t tag = 0;
  if (!cursor->ReadVarint(kMaxTagBytes, &tag)) return false;
  tag &= UINT32_MAX;
  if ((tag >> 3) == 0) return false;
  *number = tag >> 3;
  *wire_type = tag & 7;
  return true;
}

// Skips the value of a field whose tag was just read; a length-delimited
// one's value is left in *value. A group (only ever an unknown field here)
// is skipped up to its end tag, as protobuf keeps it. False at what protobuf's
// parser refuses too: a varint that does not end, a length past the end, an
// end tag that does not match, groups nested past protobuf's recursion limit,
// the wire types 6 and 7.
bool SkipValue(SliceCursor* cursor, uint64_t number, uint64_t wire_type, int depth,
               std::optional<SliceCursor>* value) {
  switch (wire_type) {
    case kWireVarint: {
      uint64_t ignored = 0;
      return cursor->ReadVarint(kMaxVarintBytes, &ignored);
    }
    case kWireFixed64:
      return cursor->Skip(8);
    case kWireFixed32:
      return cursor->Skip(4);
    case kWireLengthDelimited: {
      uint64_t length = 0;
      if (!cursor->ReadVarint(kMaxLengthBytes, &length) || length > kMaxLength ||
          length > cursor->remaining()) {
        return false;
      }
      *value = cursor->Prefix(length);
      return cursor->Skip(length);
    }
    case kWireStartGroup: {
      if (depth >= kMaxGroupDepth) return false;
      while (true) {
        uint64_t inner_number = 0;
        uint64_t inner_wire_type = 0;
        if (!ReadTag(cursor, &inner_number, &inner_wire_type)) return false;
        if (inner_wire_type == kWireEndGroup) return inner_number == number;
        std::optional<SliceCursor> ignored;
        if (!SkipValue(cursor, inner_number, inner_wire_type, depth + 1, &ignored)) return false;
      }
    }
    default:  // An end tag with no start; the invalid wire types 6 and 7.
      return false;
  }
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
// field's size (tag included). Returns false, having stopped, at what
// protobuf's parser would refuse (see SkipValue), which it is then left to
// refuse itself.
template <typename OnField>
bool ScanFields(SliceCursor cursor, OnField on_field) {
  while (cursor.remaining() > 0) {
    Field field{.start = cursor};
    if (!ReadTag(&cursor, &field.number, &field.wire_type) ||
        !SkipValue(&cursor, field.number, field.wire_type, 0, &field.value)) {
      return false;
    }
    on_field(field, field.start.remaining() - cursor.remaining());
  }
  return true;
}

// What the scan of one TaskRequest measured.
struct Measured {
  std::optional<SliceCursor> payload;  // The last payload field: the one that counts.
  uint64_t largest_payload = 0;        // Of every payload field (protobuf would copy each).
  uint64_t params = 0;                 // Map entries, as sent (a repeated key counts again).
  // The first entry with a key or value over the limit (any occurrence in it).
  std::optional<SliceCursor> long_param_key;
  uint64_t long_param_key_bytes = 0;
  uint64_t long_param_value_bytes = 0;
};

// Measures one params map entry. Returns false at what the scan leaves to
// protobuf's parser.
bool MeasureParam(SliceCursor entry, uint64_t max_param_bytes, Measured* m) {
  std::optional<SliceCursor> key;
  uint64_t key_bytes = 0;
  uint64_t value_bytes = 0;
  const bool scanned = ScanFields(entry, [&](const Field& field, size_t) {
    if (!field.value.has_value()) return;
    if (field.number == kParamKeyField) {
      key = field.value;  // A later key replaces this one, as in protobuf.
      key_bytes = std::max<uint64_t>(key_bytes, field.value->remaining());
    } else if (field.number == kParamValueField) {
      value_bytes = std::max<uint64_t>(value_bytes, field.value->remaining());
    }
  });
  if (!scanned) return false;
  if (!m->long_param_key.has_value() &&
      (key_bytes > max_param_bytes || value_bytes > max_param_bytes)) {
    m->long_param_key = key.value_or(entry.Prefix(0));
    m->long_param_key_bytes = key_bytes;
    m->long_param_value_bytes = value_bytes;
  }
  return true;
}

// Scans the top level of the TaskRequest under `message` (and each params
// entry). Returns false at what the scan leaves to protobuf's parser.
bool Measure(SliceCursor message, const daemon::RequestLimits& limits, Measured* m) {
  bool entries_scanned = true;
  const bool scanned = ScanFields(message, [&](const Field& field, size_t) {
    if (!field.value.has_value()) return;
    if (field.number == kPayloadField) {
      m->payload = field.value;  // A later payload replaces this one.
      m->largest_payload = std::max<uint64_t>(m->largest_payload, field.value->remaining());
    } else if (field.number == kParamsField) {
      ++m->params;
      if (entries_scanned && m->params <= limits.max_params) {
        entries_scanned = MeasureParam(*field.value, limits.max_param_bytes, m);
      }
    }
  });
  return scanned && entries_scanned;
}

// Whether nothing measured is over a limit (protobuf may parse it all).
bool WithinLimits(const Measured& m, const daemon::RequestLimits& limits) {
  return m.params <= limits.max_params && !m.long_param_key.has_value() &&
         m.largest_payload <= limits.max_payload_bytes;
}

// Why the params must be left out, if they must (OK otherwise).
absl::Status ParamsRefusal(const Measured& m, const daemon::RequestLimits& limits) {
  if (m.params > limits.max_params) return daemon::TooManyParamsError(m.params, limits.max_params);
  if (!m.long_param_key.has_value()) return absl::OkStatus();
  SliceCursor key = *m.long_param_key;
  std::string name_start;
  key.AppendTo(std::min<size_t>(key.remaining(), daemon::kShownNameBytes), &name_start);
  return daemon::ParamTooLongError(name_start, m.long_param_key_bytes, m.long_param_value_bytes,
                                   limits.max_param_bytes);
}

// DecodeTaskRequest over the message under `message`.
bool DecodeRequestAt(SliceCursor message, const daemon::RequestLimits& limits, DecodedTask* out,
                     DecodePath* path) {
  *path = DecodePath::kWholeToProtobuf;
  out->left_out = {};
  Measured m;
  if (!Measure(message, limits, &m)) {
    out->request.Clear();
    return ParseWhole(message, &out->request);
  }
  *path = DecodePath::kScanned;
  if (WithinLimits(m, limits) && message.remaining() <= kParseWholeMaxBytes) {
    return ParseWhole(message, &out->request);
  }
  absl::Status params_refusal = ParamsRefusal(m, limits);
  // Every field but the payloads (and refused params), as received, for protobuf.
  const bool skip_params = !params_refusal.ok();
  std::string others;
  ScanFields(message, [&](const Field& field, size_t bytes) {
    if (field.value.has_value() &&
        (field.number == kPayloadField || (skip_params && field.number == kParamsField))) {
      return;
    }
    SliceCursor copy_from = field.start;
    copy_from.AppendTo(bytes, &others);
  });
  if (!out->request.ParseFromString(others)) return false;
  if (skip_params) {
    out->left_out.params = std::move(params_refusal);  // Refused: the payload is not wanted.
  } else if (m.payload.has_value() && m.payload->remaining() > limits.max_payload_bytes) {
    out->left_out.payload_bytes = m.payload->remaining();
    out->left_out.payload_limit = limits.max_payload_bytes;
  } else if (m.payload.has_value()) {  // (An earlier, oversized payload is never copied.)
    const size_t size = m.payload->remaining();
    std::string bytes;
    bytes.reserve(size);
    if (size >= kLargePayloadBytes) PrepareForCopy(bytes.data(), size);
    m.payload->AppendTo(size, &bytes);
    out->request.set_payload(std::move(bytes));
  }
  return true;
}

// The TaskBatch under `message`, by protobuf's parser, into *out.
bool ParseBatch(SliceCursor message, std::vector<DecodedTask>* out) {
  crunch::v1::TaskBatch batch;
  if (!ParseWhole(message, &batch)) return false;
  out->reserve(static_cast<size_t>(batch.tasks_size()));
  for (crunch::v1::TaskRequest& request : *batch.mutable_tasks()) {
    out->emplace_back().request = std::move(request);
  }
  return true;
}

// Calls decode(SliceCursor) over the bytes of `buffer`, without copying them
// or, for a buffer of one slice (most small messages), allocating.
template <typename Decode>
bool WithCursor(const grpc::ByteBuffer& buffer, Decode decode) {
  grpc::Slice one;
  if (buffer.TrySingleSlice(&one).ok()) return decode(SliceCursor(&one, 1));
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  return decode(SliceCursor(slices.data(), slices.size()));
}

}  // namespace

bool DecodeTaskRequest(const grpc::ByteBuffer& buffer, const daemon::RequestLimits& limits,
                       DecodedTask* out, DecodePath* path) {
  DecodePath ignored_path;
  if (path == nullptr) path = &ignored_path;
  *path = DecodePath::kWholeToProtobuf;
  return WithCursor(
      buffer, [&](SliceCursor message) { return DecodeRequestAt(message, limits, out, path); });
}

bool DecodeTaskBatch(const grpc::ByteBuffer& buffer, const daemon::RequestLimits& limits,
                     std::vector<DecodedTask>* out, DecodePath* path) {
  DecodePath ignored_path;
  if (path == nullptr) path = &ignored_path;
  *path = DecodePath::kWholeToProtobuf;
  out->clear();
  return WithCursor(buffer, [&](SliceCursor message) {
    // A small batch with nothing over a limit goes to protobuf's parser
    // whole, once its tasks are measured: parsing its tasks one by one costs
    // about twice as much (bench/decoder_bench.cc).
    if (message.remaining() <= kParseWholeMaxBytes) {
      bool within = true;
      const bool scanned = ScanFields(message, [&](const Field& field, size_t) {
        if (!within || field.number != kBatchTasksField || !field.value.has_value()) return;
        Measured m;
        within = Measure(*field.value, limits, &m) && WithinLimits(m, limits);
      });
      if (scanned && within) {
        *path = DecodePath::kScanned;
        return ParseBatch(message, out);
      }
    }
    // Room for a typical batch up front (a noop task takes about 16 bytes).
    out->reserve(std::min<size_t>(message.remaining() / 16, 256));
    bool tasks_ok = true;
    bool all_scanned = true;
    const bool scanned = ScanFields(message, [&](const Field& field, size_t) {
      // TaskBatch.tasks (1, length-delimited); anything else is a field this
      // version does not know, which protobuf would keep and crunchd ignores.
      if (!tasks_ok || field.number != kBatchTasksField || !field.value.has_value()) return;
      DecodePath task_path = DecodePath::kScanned;
      tasks_ok = DecodeRequestAt(*field.value, limits, &out->emplace_back(), &task_path);
      all_scanned = all_scanned && task_path == DecodePath::kScanned;
    });
    if (scanned) {
      if (!tasks_ok) return false;  // protobuf's verdict on that task, so on the batch.
      *path = all_scanned ? DecodePath::kScanned : DecodePath::kWholeToProtobuf;
      return true;
    }
    out->clear();
    return ParseBatch(message, out);
  });
}

}  // namespace crunch::rpc::internal
