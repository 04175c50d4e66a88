#include "clients/cli/task_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/format.h"

namespace crunch::cli {
namespace {

// The whole of `file`; false with errno set on failure.
bool ReadAll(std::FILE* file, std::string* out) {
  char buf[64 * 1024];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) out->append(buf, n);
  return std::ferror(file) == 0;
}

bool WriteAll(std::FILE* file, const std::string& bytes) {
  return std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size() && std::fflush(file) == 0;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseParams(
    const std::vector<std::string>& params) {
  std::map<std::string, std::string> out;
  for (const std::string& p : params) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError("-p expects key=value (e.g. -p n=30), got '" + p + "'");
    }
    if (!out.emplace(p.substr(0, eq), p.substr(eq + 1)).second) {
      return absl::InvalidArgumentError("parameter '" + p.substr(0, eq) +
                                        "' is given twice; give each -p key once");
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadInput(const std::string& input) {
  std::string payload;
  if (input.empty()) return payload;
  if (input == "-") {
    if (!ReadAll(stdin, &payload)) {
      return absl::InvalidArgumentError(std::string("cannot read stdin: ") + std::strerror(errno));
    }
    return payload;
  }
  std::FILE* file = std::fopen(input.c_str(), "rb");
  if (file == nullptr) {
    return absl::InvalidArgumentError("cannot open --input " + input + ": " + std::strerror(errno));
  }
  const bool ok = ReadAll(file, &payload);
  const int error = errno;
  std::fclose(file);
  if (!ok) {
    return absl::InvalidArgumentError("cannot read --input " + input + ": " + std::strerror(error));
  }
  return payload;
}

absl::StatusOr<crunch::v1::TaskRequest> BuildRequest(const TaskOptions& task) {
  absl::StatusOr<std::map<std::string, std::string>> params = ParseParams(task.params);
  if (!params.ok()) return params.status();
  absl::StatusOr<std::string> payload = ReadInput(task.input);
  if (!payload.ok()) return payload.status();
  crunch::v1::TaskRequest request;
  request.set_kind(task.kind);
  request.set_payload(*std::move(payload));
  for (auto& [key, value] : *params) (*request.mutable_params())[key] = std::move(value);
  request.set_timeout_ms(task.timeout_ms);
  request.set_priority(task.priority);
  request.set_idempotency_key(task.idempotency_key);
  return request;
}

int EmitOutput(const std::string& output, const std::string& path) {
  if (!path.empty()) {
    std::FILE* file = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
    if (file == nullptr || !WriteAll(file, output) || (file != stdout && std::fclose(file) != 0)) {
      std::fprintf(stderr, "crunchctl: cannot write --output %s: %s\n", path.c_str(),
                   std::strerror(errno));
      return kExitFailure;
    }
    return kExitOk;
  }
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  bool ok;
  if (terminal && LooksBinary(output)) {
    ok = std::fprintf(stdout, "<%zu bytes of binary output; use --output FILE>\n", output.size()) >
             0 &&
         std::fflush(stdout) == 0;
  } else {
    ok = WriteAll(stdout, output);
    if (ok && terminal && !output.empty() && output.back() != '\n') ok = WriteAll(stdout, "\n");
  }
  if (!ok) {
    std::fprintf(stderr, "crunchctl: cannot write the output to stdout: %s\n",
                 std::strerror(errno));
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace crunch::cli
