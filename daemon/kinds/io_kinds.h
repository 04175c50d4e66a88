// The built-in I/O task kinds: sleep, http.get, file.read, file.write and
// dns.resolve. They run on the daemon's I/O thread pool and block their thread
// for the length of the call; each polls its TaskContext where the underlying
// call allows (see io_kinds.cc for what each can and cannot interrupt).
//
// Thread safety: the kernels IoKinds() returns hold an immutable copy of the
// settings and no other state, so any number may run at once on any threads.

#ifndef CRUNCH_DAEMON_KINDS_IO_KINDS_H_
#define CRUNCH_DAEMON_KINDS_IO_KINDS_H_

#include <string>
#include <vector>

#include "daemon/kind.h"

namespace crunch::daemon {

struct IoSettings {
  // file.* paths are relative to this directory and may not resolve outside it
  // (no "..", absolute paths or symlinks that leave it). Empty: file.* fail.
  std::string data_dir;
  // Hosts http.get may reach: "host" (any port), "host:port", "[v6addr]" or
  // "[v6addr]:port"; "*" allows any. Hosts are compared as written in the URL
  // (case-insensitively), not after DNS resolution. Empty: http.get always fails.
  // The address each connection goes to is checked too: "*" does not reach
  // loopback or private addresses, and only an entry naming the address itself
  // reaches link-local and cloud metadata ones (internal/http_allow_list.h).
  std::vector<std::string> http_allow;
  // How many redirects http.get follows, each checked like the first URL; 0: none.
  uint32_t http_max_redirects = 5;
  // How long http.get waits for each connection to be established.
  uint32_t http_connect_timeout_ms = 10000;
  // No kernel outputs more than limits.max_output_bytes, whatever Output it is given.
  KernelLimits limits;
};

// Every built-in I/O kind, in the order ListKinds shows them. The kernels
// capture a copy of `settings`.
std::vector<KindSpec> IoKinds(const IoSettings& settings);

// Global set-up the I/O kinds need (curl_global_init). Call once at daemon
// start, before any I/O thread runs; calling it again, from any thread, is a
// no-op. http.get calls it too, so tests need not.
void InitIoKinds();

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_IO_KINDS_H_
