#include "daemon/kinds/kind_catalog.h"

#include <openssl/evp.h>

#include <cstdint>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace crunch::daemon {
namespace {

constexpr absl::string_view kHeader = "crunch-kinds 1";

std::string Field(absl::string_view text) { return absl::CEscape(text); }

absl::Status BadLine(size_t number, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("kind catalog line ", number, ": ", why,
                   " (crunch_worker --describe and crunchd differ in version?)"));
}

bool ParseFlag(absl::string_view text, bool* out) {
  if (text != "0" && text != "1") return false;
  *out = text == "1";
  return true;
}

}  // namespace

std::string EncodeKindCatalog(const std::vector<KindSpec>& kinds) {
  std::string out = absl::StrCat(kHeader, "\n");
  for (const KindSpec& k : kinds) {
    absl::StrAppend(&out,
                    absl::StrJoin({std::string("kind"), Field(k.name), Field(k.description),
                                   Field(k.source), absl::StrCat(k.output_bound.bounded ? 1 : 0),
                                   absl::StrCat(k.output_bound.fixed_bytes),
                                   absl::StrCat(k.output_bound.per_input_kib)},
                                  "\t"),
                    "\n");
    for (const ParamSpec& p : k.params) {
      absl::StrAppend(
          &out,
          absl::StrJoin({std::string("param"), Field(p.name),
                         std::string(p.type == ParamSpec::Type::kInt ? "int" : "string"),
                         absl::StrCat(p.required ? 1 : 0), Field(p.default_value),
                         absl::StrCat(p.min), absl::StrCat(p.max), Field(p.description)},
                        "\t"),
          "\n");
    }
  }
  absl::StrAppend(&out, "end\t", kinds.size(), "\n");
  return out;
}

absl::StatusOr<std::vector<KindSpec>> DecodeKindCatalog(absl::string_view text) {
  std::vector<KindSpec> kinds;
  const std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.empty() || lines[0] != kHeader) {
    return BadLine(1, absl::StrCat("expected '", kHeader, "'"));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t number = i + 1;
    const std::vector<absl::string_view> f = absl::StrSplit(lines[i], '\t');
    std::vector<std::string> u(f.size());
    for (size_t j = 1; j < f.size(); ++j) {
      if (!absl::CUnescape(f[j], &u[j])) return BadLine(number, "a field is not C-escaped");
    }
    if (f[0] == "kind" && f.size() == 7) {
      KindSpec k;
      k.name = u[1];
      k.pool = Pool::kCpu;
      k.description = u[2];
      k.source = u[3];
      if (!ParseFlag(u[4], &k.output_bound.bounded) ||
          !absl::SimpleAtoi(u[5], &k.output_bound.fixed_bytes) ||
          !absl::SimpleAtoi(u[6], &k.output_bound.per_input_kib)) {
        return BadLine(number, "bad output bound");
      }
      kinds.push_back(std::move(k));
    } else if (f[0] == "param" && f.size() == 8 && !kinds.empty()) {
      ParamSpec p;
      p.name = u[1];
      if (u[2] != "int" && u[2] != "string") return BadLine(number, "bad param type");
      p.type = u[2] == "int" ? ParamSpec::Type::kInt : ParamSpec::Type::kString;
      p.default_value = u[4];
      p.description = u[7];
      if (!ParseFlag(u[3], &p.required) || !absl::SimpleAtoi(u[5], &p.min) ||
          !absl::SimpleAtoi(u[6], &p.max)) {
        return BadLine(number, "bad param fields");
      }
      kinds.back().params.push_back(std::move(p));
    } else if (f[0] == "end" && f.size() == 2) {
      size_t count = 0;
      if (!absl::SimpleAtoi(u[1], &count) || count != kinds.size()) {
        return BadLine(number, "the kind count does not match");
      }
      if (i + 2 != lines.size() || !lines[i + 1].empty()) {
        return BadLine(number + 1, "text after the end");
      }
      return kinds;
    } else {
      return BadLine(number, "not a kind, param or end line");
    }
  }
  return BadLine(lines.size(), "the catalog ends without an end line");
}

std::string KindCatalogDigest(absl::string_view encoded) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(encoded.data(), encoded.size(), digest, &size, EVP_sha256(), nullptr);
  // 128 bits tell catalogs apart well enough.
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 16));
}

}  // namespace crunch::daemon
