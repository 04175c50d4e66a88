// The built-in I/O kinds.
//
// Every kernel is a closure over one shared, immutable IoSettings and runs on
// whichever I/O thread the scheduler picks. Calls share nothing else: each
// opens its own directory fds and its own curl handle, so there are no locks.
// Every kernel writes through a CappedOutput, so settings.limits applies
// whatever Output the caller hands in.
//
// file.*: confinement to io.data_dir. Each call opens io.data_dir as a
// directory fd and resolves the caller's path beneath it with openat2(2) and
// RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. The kernel refuses "..", absolute
// paths and symlinks that leave the directory while it resolves the path (EXDEV),
// so there is no check-then-open race. There is no lexical fallback: where
// openat2 is missing (Linux < 5.6, or a seccomp filter that hides it) file.*
// fail closed with UNIMPLEMENTED. file.write resolves only the parent directory
// that way; the file itself is a temporary file in that directory (created with
// O_EXCL, written, fsynced, given the old file's permission bits) that
// renameat(2) moves over the target, then the directory is fsynced. Readers see
// the old or the new content, never a mix. A crash before the rename leaves a
// ".crunch-write-*.tmp" file behind.
//
// http.get: the URL is parsed once, with curl's URL API, and that same parsed
// handle is what curl fetches (CURLOPT_CURLU). The host checked against
// io.http_allow is therefore the host curl connects to, with no second parser
// to disagree. Redirects are not followed, so a 3xx cannot lead elsewhere.
// Proxy variables in the environment (http_proxy, ...) are honoured as curl
// always does; the allow list applies to the URL's host.
//
// Stopping early: sleep polls its TaskContext every 5 ms or less. http.get
// passes the deadline to curl as CURLOPT_TIMEOUT_MS and aborts from the progress
// callback once ShouldStop(). curl promises that callback at least once a
// second, so a cancel lands within a second (about 100 ms with curl 7.88
// against a stalled server). file.read and file.write check between 1 MiB
// chunks. dns.resolve (getaddrinfo) cannot be interrupted; the resolver's own
// timeouts bound it.

#include "daemon/kinds/io_kinds.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace crunch::daemon {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int64_t kMaxFileOffset = int64_t{1} << 62;
constexpr size_t kChunkBytes = size_t{1} << 20;
constexpr steady_clock::duration kSleepStep = milliseconds(5);

// An Output that also enforces limits.max_output_bytes, whatever limit the
// Output it wraps has of its own.
class CappedOutput final : public Output {
 public:
  CappedOutput(Output& inner, uint64_t cap) : inner_(inner), cap_(cap) {}

  using Output::Append;
  absl::Status Append(std::span<const std::byte> bytes) override {
    if (bytes.size() > cap_ - written_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("output exceeds the ", cap_, " bytes allowed (limits.max_output_bytes)"));
    }
    absl::Status status = inner_.Append(bytes);
    if (status.ok()) written_ += bytes.size();
    return status;
  }
  uint64_t remaining() const override { return std::min(inner_.remaining(), cap_ - written_); }

 private:
  Output& inner_;
  uint64_t cap_;
  uint64_t written_ = 0;
};

// Why a kernel stopped early: the caller cancelled, or the deadline passed.
absl::Status Stopped(const TaskContext& context, absl::string_view what) {
  if (context.cancelled != nullptr && context.cancelled->load(std::memory_order_relaxed)) {
    return absl::CancelledError(absl::StrCat(what, ": cancelled"));
  }
  return absl::DeadlineExceededError(absl::StrCat(what, ": deadline passed"));
}

// ---------------------------------------------------------------------------
// sleep

absl::Status Sleep(const IoSettings&, std::span<const std::byte>, const TaskParams& params,
                   const TaskContext& context, Output&) {
  const milliseconds requested(params.Int("ms"));
  const steady_clock::time_point start = steady_clock::now();
  const steady_clock::time_point end = start + requested;
  for (;;) {
    const steady_clock::time_point now = steady_clock::now();
    const auto slept = std::chrono::duration_cast<milliseconds>(now - start).count();
    if (context.cancelled != nullptr && context.cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError(
          absl::StrCat("sleep: cancelled after ", slept, " of ", requested.count(), " ms"));
    }
    if (now >= end) return absl::OkStatus();
    if (now >= context.deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("sleep: deadline passed after ", slept, " of ", requested.count(), " ms"));
    }
    std::this_thread::sleep_for(std::min({end - now, context.deadline - now, kSleepStep}));
  }
}

// ---------------------------------------------------------------------------
// file.read, file.write

// Owns a file descriptor. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Close(); }

  int get() const { return fd_; }

 private:
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

absl::Status CheckPathParam(absl::string_view kind, const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kind, ": param 'path' must not be empty; give a file path relative to io.data_dir"));
  }
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, ": param 'path' must not contain NUL bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Fd> OpenDataDir(absl::string_view kind, const std::string& data_dir) {
  if (data_dir.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(kind, ": io.data_dir is not set; file kinds need a data directory"));
  }
  const int fd = ::open(data_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    return absl::FailedPreconditionError(
        absl::StrCat(kind, ": cannot open io.data_dir '", data_dir, "': ", std::strerror(error)));
  }
  return Fd(fd);
}

// openat2(root, path) confined beneath root. Returns the fd, or -errno.
int OpenBeneath(int root, const std::string& path, uint64_t flags, uint64_t mode = 0) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = mode;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a concurrent rename or mount raced the lookup; the kernel asks
    // for a retry rather than risk a wrong answer.
    if (errno == EINTR || (errno == EAGAIN && attempt < 16)) continue;
    return -errno;
  }
}

absl::Status PathError(absl::string_view kind, absl::string_view path, int error) {
  switch (error) {
    case EXDEV:
      return absl::PermissionDeniedError(
          absl::StrCat(kind, ": path '", path,
                       "' resolves outside io.data_dir (paths must stay inside it: no '..' "
                       "above it, no absolute paths, no symlinks leading out)"));
    case ENOENT:
      return absl::NotFoundError(
          absl::StrCat(kind, ": '", path, "' does not exist in io.data_dir"));
    case ELOOP:
      return absl::FailedPreconditionError(absl::StrCat(
          kind, ": path '", path, "' has too many levels of symbolic links or uses a magic link"));
    case ENOSYS:
      return absl::UnimplementedError(
          absl::StrCat(kind,
                       ": this kernel lacks openat2(2) (Linux 5.6 or later), which "
                       "confining paths to io.data_dir requires"));
    default:
      return absl::ErrnoToStatus(error, absl::StrCat(kind, ": cannot open '", path, "'"));
  }
}

// The errno of the call that just failed, as a Status: "<kind>: cannot <what>
// '<path>': <strerror>". Reads errno before doing anything that could change it.
absl::Status SysError(absl::string_view kind, absl::string_view what, absl::string_view path) {
  const int error = errno;
  return absl::ErrnoToStatus(error, absl::StrCat(kind, ": cannot ", what, " '", path, "'"));
}

absl::string_view FileTypeName(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

absl::Status FileRead(const IoSettings& settings, std::span<const std::byte>,
                      const TaskParams& params, const TaskContext& context, Output& output) {
  constexpr absl::string_view kKind = "file.read";
  const std::string& path = params.String("path");
  if (absl::Status status = CheckPathParam(kKind, path); !status.ok()) return status;
  absl::StatusOr<Fd> root = OpenDataDir(kKind, settings.data_dir);
  if (!root.ok()) return root.status();
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
  const int fd = OpenBeneath(root->get(), path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return PathError(kKind, path, -fd);
  const Fd file(fd);

  struct stat info {};
  if (::fstat(file.get(), &info) != 0) {
    return SysError(kKind, "stat", path);
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(kKind, ": '", path, "' is ",
                                                      FileTypeName(info.st_mode),
                                                      "; only regular files can be read"));
  }
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  const uint64_t offset = static_cast<uint64_t>(params.Int("offset"));
  if (offset > size) {
    return absl::OutOfRangeError(absl::StrCat(kKind, ": offset ", offset, " is past the end of '",
                                              path, "' (", size, " bytes)"));
  }
  uint64_t want = size - offset;
  if (params.Has("length")) want = std::min(want, static_cast<uint64_t>(params.Int("length")));
  if (want > output.remaining()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        kKind, ": reading '", path, "' from offset ", offset, " would output ", want,
        " bytes, more than the ", output.remaining(),
        " allowed (limits.max_output_bytes); read it in parts with offset and length"));
  }

  std::vector<std::byte> buffer(std::min<uint64_t>(want, kChunkBytes));
  uint64_t done = 0;
  while (done < want) {
    if (context.ShouldStop()) return Stopped(context, absl::StrCat(kKind, " '", path, "'"));
    const size_t chunk = std::min<uint64_t>(want - done, buffer.size());
    const ssize_t got =
        ::pread(file.get(), buffer.data(), chunk, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return SysError(kKind, "read", path);
    }
    if (got == 0) break;  // The file shrank since fstat: output what is there.
    absl::Status status = output.Append(std::span(buffer.data(), static_cast<size_t>(got)));
    if (!status.ok()) return status;
    done += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::Status FileWrite(const IoSettings& settings, std::span<const std::byte> input,
                       const TaskParams& params, const TaskContext& context, Output& output) {
  constexpr absl::string_view kKind = "file.write";
  const std::string& path = params.String("path");
  if (absl::Status status = CheckPathParam(kKind, path); !status.ok()) return status;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        kKind, ": path '", path, "' does not end in a file name; give a path like 'dir/file'"));
  }

  absl::StatusOr<Fd> root = OpenDataDir(kKind, settings.data_dir);
  if (!root.ok()) return root.status();
  const int dir_fd = OpenBeneath(root->get(), dir, O_RDONLY | O_DIRECTORY);
  if (dir_fd == -ENOENT) {
    return absl::NotFoundError(absl::StrCat(kKind, ": directory '", dir, "' of '", path,
                                            "' does not exist in io.data_dir"));
  }
  if (dir_fd < 0) return PathError(kKind, path, -dir_fd);
  const Fd parent(dir_fd);

  // A replaced file keeps its permission bits; a new one gets 0666 less the umask.
  struct stat old {};
  const bool replacing = ::fstatat(parent.get(), name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
  if (replacing && S_ISDIR(old.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(kKind, ": '", path, "' is a directory; only files can be written"));
  }

  static std::atomic<uint64_t> temp_counter{0};
  std::string temp_name;
  int temp_fd = -1;
  for (int attempt = 0; temp_fd < 0; ++attempt) {
    temp_name = absl::StrCat(".crunch-write-", ::getpid(), "-", temp_counter.fetch_add(1), ".tmp");
    temp_fd = ::openat(parent.get(), temp_name.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (temp_fd < 0 && (errno != EEXIST || attempt >= 100)) {
      return SysError(kKind, "create a temporary file beside", path);
    }
  }
  const Fd temp(temp_fd);
  absl::Cleanup remove_temp = [&] { ::unlinkat(parent.get(), temp_name.c_str(), 0); };

  if (replacing && S_ISREG(old.st_mode) && ::fchmod(temp.get(), old.st_mode & 07777) != 0) {
    return SysError(kKind, "copy the permissions of", path);
  }
  for (size_t done = 0; done < input.size();) {
    if (context.ShouldStop()) return Stopped(context, absl::StrCat(kKind, " '", path, "'"));
    const ssize_t wrote =
        ::write(temp.get(), input.data() + done, std::min(input.size() - done, kChunkBytes));
    if (wrote < 0) {
      if (errno == EINTR) continue;
      return SysError(kKind, "write", path);
    }
    done += static_cast<size_t>(wrote);
  }
  if (::fsync(temp.get()) != 0) {
    return SysError(kKind, "flush", path);
  }
  if (::renameat(parent.get(), temp_name.c_str(), parent.get(), name.c_str()) != 0) {
    return SysError(kKind, "replace", path);
  }
  std::move(remove_temp).Cancel();
  // The new content is in place; this makes the rename itself survive a crash.
  if (::fsync(parent.get()) != 0) {
    return SysError(kKind, "flush the directory of", path);
  }
  return output.Append(absl::StrCat(input.size()));
}

// ---------------------------------------------------------------------------
// http.get

CURLcode CurlGlobalInit() {
  static const CURLcode result = curl_global_init(CURL_GLOBAL_DEFAULT);
  return result;
}

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};

// One part of a parsed URL; "" if it has none.
std::string UrlPart(CURLU* url, CURLUPart part, unsigned int flags = 0) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return "";
  std::string result(value);
  curl_free(value);
  return result;
}

absl::string_view StripBrackets(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

// Whether io.http_allow lets http.get reach `host` (as curl's URL API gives it:
// IPv6 addresses in brackets) on `port`.
bool HostAllowed(const std::vector<std::string>& allow, absl::string_view host,
                 absl::string_view port) {
  for (absl::string_view entry : allow) {
    if (entry == "*") return true;
    absl::string_view entry_host = entry;
    absl::string_view entry_port;
    if (absl::StartsWith(entry, "[")) {  // "[v6]" or "[v6]:port"
      const size_t close = entry.find(']');
      if (close != absl::string_view::npos) {
        entry_host = entry.substr(0, close + 1);
        if (absl::StartsWith(entry.substr(close + 1), ":")) entry_port = entry.substr(close + 2);
      }
    } else if (const size_t colon = entry.find(':');
               colon != absl::string_view::npos &&
               entry.find(':', colon + 1) == absl::string_view::npos) {
      entry_host = entry.substr(0, colon);  // "host:port"; two colons or more: a bare IPv6.
      entry_port = entry.substr(colon + 1);
    }
    if (absl::EqualsIgnoreCase(StripBrackets(entry_host), StripBrackets(host)) &&
        (entry_port.empty() || entry_port == port)) {
      return true;
    }
  }
  return false;
}

struct Transfer {
  CURL* easy;
  const TaskContext* context;
  Output* output;
  bool status_not_2xx = false;  // The body callback saw a non-2xx status.
  absl::Status append_error;    // The Output refused the body.
};

bool Is2xx(long code) { return code >= 200 && code <= 299; }

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  Transfer& transfer = *static_cast<Transfer*>(user);
  long code = 0;
  curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &code);
  // An error page is not the output; stop before reading it.
  if (!Is2xx(code)) {
    transfer.status_not_2xx = true;
    return 0;
  }
  const size_t bytes = size * count;
  transfer.append_error =
      transfer.output->Append(std::as_bytes(std::span<const char>(data, bytes)));
  return transfer.append_error.ok() ? bytes : 0;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->context->ShouldStop() ? 1 : 0;
}

absl::Status HttpStatusError(CURL* easy, absl::string_view url, long code) {
  std::string detail = "only 2xx responses succeed";
  if (code >= 300 && code <= 399) {
    detail = "redirects are not followed";
    char* location = nullptr;
    if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
        location != nullptr) {
      absl::StrAppend(&detail, "; Location: ", location);
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("http.get ", url, ": HTTP ", code, " (", detail, ")"));
}

absl::Status HttpGet(const IoSettings& settings, std::span<const std::byte>,
                     const TaskParams& params, const TaskContext& context, Output& output) {
  const std::string& url = params.String("url");
  if (url.empty() || url.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "http.get: param 'url' must be an http:// or https:// URL, got an empty string or NUL "
        "bytes");
  }
  if (CURLcode init = CurlGlobalInit(); init != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("http.get: curl_global_init failed: ", curl_easy_strerror(init)));
  }
  std::unique_ptr<CURLU, CurlUrlDeleter> parsed(curl_url());
  if (parsed == nullptr) return absl::ResourceExhaustedError("http.get: out of memory");
  // CURLU_NON_SUPPORT_SCHEME: parse any scheme, so that refusing one is our
  // decision with our message.
  if (CURLUcode rc =
          curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK) {
    return absl::InvalidArgumentError(absl::StrCat("http.get: '", url, "' is not a valid URL (",
                                                   curl_url_strerror(rc),
                                                   "); give an absolute http:// or https:// URL"));
  }
  const std::string scheme = absl::AsciiStrToLower(UrlPart(parsed.get(), CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("http.get: scheme '", scheme, "' of '", url,
                     "' is not allowed; allowed schemes: http, https"));
  }
  const std::string host = UrlPart(parsed.get(), CURLUPART_HOST);
  const std::string port = UrlPart(parsed.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("http.get: '", url, "' names no host"));
  }
  if (!HostAllowed(settings.http_allow, host, port)) {
    return absl::PermissionDeniedError(
        absl::StrCat("http.get: host '", host, ":", port, "' is not in io.http_allow (allowed: ",
                     settings.http_allow.empty() ? "none, the list is empty"
                                                 : absl::StrJoin(settings.http_allow, ", "),
                     ")"));
  }
  const std::string what = absl::StrCat("http.get ", url);
  if (context.ShouldStop()) return Stopped(context, what);

  std::unique_ptr<CURL, CurlEasyDeleter> handle(curl_easy_init());
  if (handle == nullptr) return absl::InternalError("http.get: curl_easy_init failed");
  CURL* easy = handle.get();
  Transfer transfer{.easy = easy, .context = &context, .output = &output};
  char error[CURL_ERROR_SIZE] = "";
  if (CURLcode rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"); rc != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("http.get: this libcurl cannot restrict itself to http and https: ",
                     curl_easy_strerror(rc)));
  }
  if (CURLcode rc = curl_easy_setopt(easy, CURLOPT_CURLU, parsed.get()); rc != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("http.get: cannot hand the URL to curl: ", curl_easy_strerror(rc)));
  }
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "crunchd");
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &transfer);
  // Refuses a body whose Content-Length is already too big before reading it.
  const uint64_t budget = output.remaining();
  curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                   static_cast<curl_off_t>(std::min<uint64_t>(budget, INT64_MAX)));
  if (context.deadline != steady_clock::time_point::max()) {
    const auto left = std::chrono::ceil<milliseconds>(context.deadline - steady_clock::now());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::clamp<int64_t>(left.count(), 1, LONG_MAX)));
  }

  const CURLcode rc = curl_easy_perform(easy);
  long code = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
  const absl::string_view detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OK:
      return Is2xx(code) ? absl::OkStatus() : HttpStatusError(easy, url, code);
    case CURLE_WRITE_ERROR:
      if (transfer.status_not_2xx) return HttpStatusError(easy, url, code);
      if (!transfer.append_error.ok()) return transfer.append_error;
      break;
    case CURLE_ABORTED_BY_CALLBACK:
      return Stopped(context, what);
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(absl::StrCat(what, ": deadline passed (", detail, ")"));
    case CURLE_FILESIZE_EXCEEDED: {
      curl_off_t length = -1;
      curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      return absl::ResourceExhaustedError(absl::StrCat(what, ": the response body (Content-Length ",
                                                       length, ") exceeds the ", budget,
                                                       " bytes allowed (limits.max_output_bytes)"));
    }
    default:
      break;
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", detail));
}

// ---------------------------------------------------------------------------
// dns.resolve

absl::Status DnsResolve(const IoSettings&, std::span<const std::byte>, const TaskParams& params,
                        const TaskContext&, Output& output) {
  const std::string& host = params.String("host");
  if (host.empty() || host.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "dns.resolve: param 'host' must be a host name, got an empty string or NUL bytes");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // One entry per address, not one per socket type.
  addrinfo* list = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
    const std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    const std::string message = absl::StrCat("dns.resolve: cannot resolve '", host, "': ", why);
    // EAI_AGAIN is the resolver not answering, not a verdict on the name: worth a retry.
    return rc == EAI_AGAIN ? absl::UnavailableError(message) : absl::NotFoundError(message);
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(list, &::freeaddrinfo);

  std::vector<std::string> seen;
  std::string text;
  for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    char address[NI_MAXHOST];
    if (::getnameinfo(entry->ai_addr, entry->ai_addrlen, address, sizeof(address), nullptr, 0,
                      NI_NUMERICHOST) != 0 ||
        std::find(seen.begin(), seen.end(), address) != seen.end()) {
      continue;
    }
    seen.emplace_back(address);
    absl::StrAppend(&text, address, "\n");
  }
  return output.Append(text);
}

// ---------------------------------------------------------------------------

using IoKernel = absl::Status (*)(const IoSettings&, std::span<const std::byte>, const TaskParams&,
                                  const TaskContext&, Output&);

KernelFn Bind(std::shared_ptr<const IoSettings> settings, IoKernel kernel) {
  return [settings = std::move(settings), kernel](std::span<const std::byte> input,
                                                  const TaskParams& params,
                                                  const TaskContext& context, Output& output) {
    CappedOutput capped(output, settings->limits.max_output_bytes);
    return kernel(*settings, input, params, context, capped);
  };
}

ParamSpec PathParam(absl::string_view description) {
  return ParamSpec{.name = "path",
                   .type = ParamSpec::Type::kString,
                   .description = std::string(description),
                   .required = true};
}

}  // namespace

void InitIoKinds() { CurlGlobalInit(); }

std::vector<KindSpec> IoKinds(const IoSettings& settings) {
  auto shared = std::make_shared<const IoSettings>(settings);
  std::vector<KindSpec> kinds;
  kinds.push_back(KindSpec{
      .name = "sleep",
      .pool = Pool::kIo,
      .description = "Waits ms milliseconds, then succeeds with no output; stops early when "
                     "cancelled or past its deadline",
      .params = {ParamSpec{.name = "ms",
                           .type = ParamSpec::Type::kInt,
                           .description = "how long to wait, in milliseconds",
                           .default_value = "0",
                           .min = 0,
                           .max = 3'600'000}},
      .run = Bind(shared, &Sleep),
  });
  kinds.push_back(KindSpec{
      .name = "http.get",
      .pool = Pool::kIo,
      .description = "Fetches an http(s) URL on a host in io.http_allow and outputs the body of "
                     "a 2xx response; redirects are not followed",
      .params = {ParamSpec{.name = "url",
                           .type = ParamSpec::Type::kString,
                           .description = "the http:// or https:// URL to fetch",
                           .required = true}},
      .run = Bind(shared, &HttpGet),
  });
  kinds.push_back(KindSpec{
      .name = "file.read",
      .pool = Pool::kIo,
      .description = "Outputs bytes of a regular file under io.data_dir",
      .params = {PathParam("file to read, relative to io.data_dir"),
                 ParamSpec{.name = "offset",
                           .type = ParamSpec::Type::kInt,
                           .description = "first byte to read",
                           .default_value = "0",
                           .min = 0,
                           .max = kMaxFileOffset},
                 ParamSpec{.name = "length",
                           .type = ParamSpec::Type::kInt,
                           .description = "most bytes to read (default: to the end of the file)",
                           .min = 0,
                           .max = kMaxFileOffset}},
      .run = Bind(shared, &FileRead),
  });
  kinds.push_back(KindSpec{
      .name = "file.write",
      .pool = Pool::kIo,
      .description = "Replaces a file under io.data_dir with the input, atomically; outputs "
                     "the number of bytes written",
      .params = {PathParam(
          "file to create or replace, relative to io.data_dir (its directory must exist)")},
      .run = Bind(shared, &FileWrite),
  });
  kinds.push_back(KindSpec{
      .name = "dns.resolve",
      .pool = Pool::kIo,
      .description = "Resolves a host name and outputs its addresses, one per line",
      .params = {ParamSpec{.name = "host",
                           .type = ParamSpec::Type::kString,
                           .description = "the host name to resolve",
                           .required = true}},
      .run = Bind(shared, &DnsResolve),
  });
  return kinds;
}

}  // namespace crunch::daemon
