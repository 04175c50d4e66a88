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
// fail closed with UNIMPLEMENTED. A path of PATH_MAX bytes or more, or with a
// name over NAME_MAX, is refused up front (INVALID_ARGUMENT naming the limit).
// file.write resolves only the parent directory that way; the file itself is a
// temporary file in that directory (created with O_EXCL, written, fsynced,
// given the old file's permission bits) that renameat(2) moves over the
// target, then the directory is fsynced. Readers see the old or the new
// content, never a mix. A crash before the rename leaves a ".crunch-write-*.tmp"
// file behind.
//
// http.get: each URL is parsed once, with curl's URL API, and that same parsed
// handle is what curl fetches (CURLOPT_CURLU). The host checked against
// io.http_allow is therefore the host curl connects to, with no second parser
// to disagree. The address rules (daemon/kinds/internal/http_allow_list.h) are
// applied where curl opens each socket (CURLOPT_OPENSOCKETFUNCTION), to the
// address it actually connects to: a DNS answer pointing at link-local or
// cloud-metadata space is refused there before a packet is sent. Redirects are
// followed here, not by curl: every hop is a new exchange whose URL is parsed
// and checked like the first one, up to io.http_max_redirects hops. Proxy
// variables in the environment (http_proxy, ...) are honoured as curl always
// does; the host rules apply to the URL's host, the address rules to the
// address crunchd connects to, which is then the proxy's (what the proxy
// connects to is the proxy's business).
//
// Limits: the body is capped by limits.max_output_bytes (a Content-Length over
// it is refused before the body is read); the whole fetch, redirects included,
// by the task's deadline; each connection attempt by io.http_connect_timeout_ms.
//
// Stopping early: sleep polls its TaskContext every 5 ms or less. http.get
// passes the deadline to curl as CURLOPT_TIMEOUT_MS and aborts from the progress
// callback once ShouldStop(). curl promises that callback at least once a
// second, so a cancel lands within a second (about 100 ms with curl 7.88
// against a stalled server). file.read and file.write check between 1 MiB
// chunks. dns.resolve (getaddrinfo) cannot be interrupted; the resolver's own
// timeouts bound it.

#include "daemon/kinds/io_kinds.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <netinet/in.h>
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
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "daemon/kinds/internal/http_allow_list.h"

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
  // The kernel would say ENAMETOOLONG; saying it here names the limit and keeps
  // a 100 KB path out of the message.
  if (path.size() >= PATH_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(kind, ": param 'path' is ", path.size(),
                                                   " bytes long; at most ", PATH_MAX - 1,
                                                   " are allowed (PATH_MAX)"));
  }
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (component.size() > NAME_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, ": param 'path' has a name of ", component.size(), " bytes ('",
                       component.substr(0, 16), "...'); at most ", NAME_MAX,
                       " are allowed in each part of a path (NAME_MAX)"));
    }
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

// A URL http.get is about to fetch: parsed once, its host admitted by io.http_allow.
struct Target {
  std::unique_ptr<CURLU, CurlUrlDeleter> parsed;
  std::string host;  // As curl's URL API gives it: IPv6 in brackets.
  uint16_t port = 0;
  HttpAllowList::HostMatch match = HttpAllowList::HostMatch::kNone;
};

// Parses and checks `url`. `subject` starts every message ("http.get: 'URL'",
// or for a redirect "http.get URL: redirect 2 (HTTP 302) to 'URL'"). `bad` is the code for a
// URL that is malformed or has another scheme: INVALID_ARGUMENT for the caller's
// URL; for a Location header, which the caller did not write, PERMISSION_DENIED.
absl::StatusOr<Target> ParseTarget(const HttpAllowList& allow, const std::string& url,
                                   absl::string_view subject, absl::StatusCode bad) {
  Target target;
  target.parsed.reset(curl_url());
  if (target.parsed == nullptr) return absl::ResourceExhaustedError("http.get: out of memory");
  // CURLU_NON_SUPPORT_SCHEME: parse any scheme, so that refusing one is our
  // decision with our message.
  if (CURLUcode rc =
          curl_url_set(target.parsed.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK) {
    return absl::Status(bad, absl::StrCat(subject, " is not a valid URL (", curl_url_strerror(rc),
                                          "); give an absolute http:// or https:// URL"));
  }
  const std::string scheme = absl::AsciiStrToLower(UrlPart(target.parsed.get(), CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    return absl::Status(bad, absl::StrCat(subject, " has scheme '", scheme,
                                          "', which is not allowed; allowed schemes: http, https"));
  }
  target.host = UrlPart(target.parsed.get(), CURLUPART_HOST);
  if (target.host.empty()) {
    return absl::Status(bad, absl::StrCat(subject, " names no host"));
  }
  const std::string port = UrlPart(target.parsed.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  uint32_t port_number = 0;
  if (!absl::SimpleAtoi(port, &port_number) || port_number == 0 || port_number > 65535) {
    return absl::Status(bad,
                        absl::StrCat(subject, " has port '", port, "', which is not in 1..65535"));
  }
  target.port = static_cast<uint16_t>(port_number);
  target.match = allow.MatchHost(target.host, target.port);
  if (target.match == HttpAllowList::HostMatch::kNone) {
    return absl::PermissionDeniedError(
        absl::StrCat(subject, ": host '", target.host, ":", port,
                     "' is not in io.http_allow (allowed: ", allow.Describe(), ")"));
  }
  return target;
}

// `location` made absolute against `base`; as it is if that fails (ParseTarget
// then says what is wrong with it).
std::string ResolveLocation(CURLU* base, const std::string& location) {
  std::unique_ptr<CURLU, CurlUrlDeleter> url(curl_url_dup(base));
  if (url == nullptr || curl_url_set(url.get(), CURLUPART_URL, location.c_str(),
                                     CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return location;
  }
  const std::string resolved = UrlPart(url.get(), CURLUPART_URL);
  return resolved.empty() ? location : resolved;
}

// One request/response exchange, shared with curl's callbacks.
struct Transfer {
  CURL* easy;
  const TaskContext* context;
  Output* output;
  const HttpAllowList* allow;
  const Target* target;
  bool status_not_2xx = false;       // The body callback saw a non-2xx status.
  absl::Status append_error;         // The Output refused the body.
  std::vector<std::string> refused;  // Why each address the rules refused was refused.
  int sockets_opened = 0;            // Connections the rules allowed.
};

bool Is2xx(long code) { return code >= 200 && code <= 299; }
bool IsRedirect(long code) {
  return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

// The Location header of the last response, as sent; "" if none.
std::string LocationHeader(CURL* easy) {
  curl_header* header = nullptr;
  if (curl_easy_header(easy, "Location", 0, CURLH_HEADER, -1, &header) != CURLHE_OK ||
      header == nullptr || header->value == nullptr) {
    return "";
  }
  return header->value;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  Transfer& transfer = *static_cast<Transfer*>(user);
  long code = 0;
  curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &code);
  // An error page or a redirect's body is not the output; stop before reading it.
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

// curl calls this for every connection it opens, with the address it resolved
// the host to (or a proxy's): the one place where the address rules apply, so
// no DNS answer and no redirect can get around them. Refusing returns
// CURL_SOCKET_BAD before any packet is sent; curl then tries the host's next
// address, if it has one.
curl_socket_t OnOpenSocket(void* user, curlsocktype, curl_sockaddr* address) {
  Transfer& transfer = *static_cast<Transfer*>(user);
  const std::optional<IpAddress> ip = IpAddress::FromSockaddr(&address->addr, address->addrlen);
  if (!ip.has_value()) {
    transfer.refused.push_back(absl::StrCat("refused a connection of address family ",
                                            address->family, " (from host '", transfer.target->host,
                                            "'); only IPv4 and IPv6 are allowed"));
    return CURL_SOCKET_BAD;
  }
  const uint16_t port =
      ntohs(address->family == AF_INET
                ? reinterpret_cast<const sockaddr_in*>(&address->addr)->sin_port
                : reinterpret_cast<const sockaddr_in6*>(&address->addr)->sin6_port);
  if (absl::Status verdict =
          transfer.allow->CheckAddress(transfer.target->match, transfer.target->host, *ip, port);
      !verdict.ok()) {
    transfer.refused.emplace_back(verdict.message());
    return CURL_SOCKET_BAD;
  }
  const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd >= 0) ++transfer.sockets_opened;
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

absl::Status HttpStatusError(absl::string_view what, long code, absl::string_view detail) {
  return absl::FailedPreconditionError(absl::StrCat(what, ": HTTP ", code, " (", detail, ")"));
}

// What one exchange ended with.
struct Exchange {
  absl::Status status;   // Not OK: http.get fails with it.
  std::string location;  // Set for a redirect with a Location: where to go next, as sent.
  long code = 0;
};

// Fetches `target` once, writing a 2xx body to `output`; a redirect comes back
// as OK with its Location.
Exchange FetchOnce(const IoSettings& settings, const HttpAllowList& allow, const Target& target,
                   absl::string_view what, const TaskContext& context, Output& output) {
  std::unique_ptr<CURL, CurlEasyDeleter> handle(curl_easy_init());
  if (handle == nullptr) return {absl::InternalError("http.get: curl_easy_init failed")};
  CURL* easy = handle.get();
  Transfer transfer{
      .easy = easy, .context = &context, .output = &output, .allow = &allow, .target = &target};
  char error[CURL_ERROR_SIZE] = "";
  if (CURLcode rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"); rc != CURLE_OK) {
    return {absl::InternalError(
        absl::StrCat("http.get: this libcurl cannot restrict itself to http and https: ",
                     curl_easy_strerror(rc)))};
  }
  if (CURLcode rc = curl_easy_setopt(easy, CURLOPT_CURLU, target.parsed.get()); rc != CURLE_OK) {
    return {absl::InternalError(
        absl::StrCat("http.get: cannot hand the URL to curl: ", curl_easy_strerror(rc)))};
  }
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  // Redirects are followed by HttpGet, one checked hop at a time.
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "crunchd");
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(settings.http_connect_timeout_ms));
  // Refuses a body whose Content-Length is already too big before reading it.
  const uint64_t budget = output.remaining();
  curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                   static_cast<curl_off_t>(std::min<uint64_t>(budget, INT64_MAX)));
  const steady_clock::time_point start = steady_clock::now();
  if (context.deadline != steady_clock::time_point::max()) {
    const auto left = std::chrono::ceil<milliseconds>(context.deadline - start);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::clamp<int64_t>(left.count(), 1, LONG_MAX)));
  }

  const CURLcode rc = curl_easy_perform(easy);
  Exchange result;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &result.code);
  const long code = result.code;
  const absl::string_view detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
  if (!transfer.refused.empty() && transfer.sockets_opened == 0) {
    // Every address the host had was refused; nothing was sent anywhere.
    result.status = absl::PermissionDeniedError(
        absl::StrCat(what, ": ", absl::StrJoin(transfer.refused, "; ")));
    return result;
  }
  const bool got_response = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && transfer.status_not_2xx);
  if (got_response && IsRedirect(code)) {
    result.location = LocationHeader(easy);
    if (!result.location.empty()) return result;
    result.status = HttpStatusError(what, code, "a redirect without a Location header");
    return result;
  }
  if (got_response) {
    if (!Is2xx(code)) result.status = HttpStatusError(what, code, "only 2xx responses succeed");
    return result;
  }
  switch (rc) {
    case CURLE_WRITE_ERROR:
      if (absl::IsResourceExhausted(transfer.append_error)) {
        result.status = absl::ResourceExhaustedError(
            absl::StrCat(what, ": the response body is larger than the ", budget,
                         " bytes allowed (limits.max_output_bytes)"));
        return result;
      }
      if (!transfer.append_error.ok()) {
        result.status = transfer.append_error;
        return result;
      }
      break;
    case CURLE_ABORTED_BY_CALLBACK:
      result.status = Stopped(context, what);
      return result;
    case CURLE_OPERATION_TIMEDOUT: {
      curl_off_t connected_us = 0;
      curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connected_us);
      const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
      // The connect timeout fired, not the deadline: nothing answered in time.
      if (connected_us == 0 && steady_clock::now() < context.deadline &&
          took.count() >= static_cast<int64_t>(settings.http_connect_timeout_ms) - 1) {
        result.status = absl::UnavailableError(absl::StrCat(
            what, ": no connection to '", target.host, ":", target.port, "' within ",
            settings.http_connect_timeout_ms, " ms (io.http_connect_timeout_ms) (", detail, ")"));
        return result;
      }
      result.status =
          absl::DeadlineExceededError(absl::StrCat(what, ": deadline passed (", detail, ")"));
      return result;
    }
    case CURLE_FILESIZE_EXCEEDED: {
      curl_off_t length = -1;
      curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      result.status = absl::ResourceExhaustedError(
          absl::StrCat(what, ": the response body (Content-Length ", length, ") exceeds the ",
                       budget, " bytes allowed (limits.max_output_bytes)"));
      return result;
    }
    default:
      break;
  }
  std::string message = absl::StrCat(what, ": ", detail);
  if (!transfer.refused.empty()) {
    absl::StrAppend(&message, " (also ", absl::StrJoin(transfer.refused, "; "), ")");
  }
  result.status = absl::UnavailableError(std::move(message));
  return result;
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
  const HttpAllowList allow(settings.http_allow);
  const std::string what = absl::StrCat("http.get ", url);
  absl::StatusOr<Target> target = ParseTarget(allow, url, absl::StrCat("http.get: '", url, "'"),
                                              absl::StatusCode::kInvalidArgument);
  if (!target.ok()) return target.status();

  std::string hop_what = what;
  for (uint32_t redirects = 0;; ++redirects) {
    if (context.ShouldStop()) return Stopped(context, what);
    Exchange exchange = FetchOnce(settings, allow, *target, hop_what, context, output);
    if (!exchange.status.ok()) return exchange.status;
    if (exchange.location.empty()) return absl::OkStatus();
    // A relative Location is resolved against the URL that sent it.
    const std::string next = ResolveLocation(target->parsed.get(), exchange.location);
    if (redirects == settings.http_max_redirects) {
      return HttpStatusError(
          hop_what, exchange.code,
          settings.http_max_redirects == 0
              ? absl::StrCat("redirects are not followed: io.http_max_redirects = 0; Location: ",
                             next)
              : absl::StrCat("too many redirects: io.http_max_redirects = ",
                             settings.http_max_redirects, " were followed; Location: ", next));
    }
    hop_what = absl::StrCat(what, ": redirect ", redirects + 1, " (HTTP ", exchange.code, ") to '",
                            next, "'");
    target = ParseTarget(allow, next, hop_what, absl::StatusCode::kPermissionDenied);
    if (!target.ok()) return target.status();
  }
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
      .description =
          "Fetches an http(s) URL on a host in io.http_allow and outputs the body of "
          "a 2xx response, following up to io.http_max_redirects redirects within the list",
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
