#include "daemon/task_codec.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  bool U32(uint32_t* v) {
    if (in_.size() - pos_ < 4) return false;
    std::memcpy(v, in_.data() + pos_, 4);
    pos_ += 4;
    return true;
  }
  bool String(uint32_t n, std::string* s) {
    if (in_.size() - pos_ < n) return false;
    s->assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  std::span<const std::byte> Rest() const { return in_.subspan(pos_); }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
};

}  // namespace

std::string EncodeParamsHeader(const TaskParams& params) {
  std::string out;
  PutU32(&out, static_cast<uint32_t>(params.values().size()));
  for (const auto& [name, value] : params.values()) {
    PutU32(&out, static_cast<uint32_t>(name.size()));
    out += name;
    PutU32(&out, static_cast<uint32_t>(value.size()));
    out += value;
  }
  return out;
}

absl::StatusOr<DecodedTaskInput> DecodeTaskInput(std::span<const std::byte> input) {
  Reader r(input);
  uint32_t count = 0;
  if (!r.U32(&count)) return absl::InvalidArgumentError("task input shorter than its header");
  std::map<std::string, std::string, std::less<>> values;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t n = 0;
    std::string name, value;
    if (!r.U32(&n) || !r.String(n, &name) || !r.U32(&n) || !r.String(n, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("task input header truncated at parameter ", i, " of ", count));
    }
    values.emplace(std::move(name), std::move(value));
  }
  return DecodedTaskInput{TaskParams(std::move(values)), r.Rest()};
}

}  // namespace crunch::daemon
