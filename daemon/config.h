// Config: crunchd's settings, from /etc/crunchd/crunchd.toml and the command line.
//
// The file is TOML with the tables [server], [cpu], [io], [limits], [log] and
// [metrics].
// Every key is optional; systemd/crunchd.toml lists each one with its default
// and a line on what it does. Sizes and times are plain integers (bytes,
// milliseconds or nanoseconds, as the key's name says).
//
// Getting a usable Config takes two steps, so that --check-config can judge a
// file without looking at the machine it runs on:
//
//   1. ParseConfig / LoadConfigFile: TOML syntax, unknown tables and keys, value
//      types, and each key's own range. Every error is INVALID_ARGUMENT (or, for
//      a file that cannot be read, the errno's code) and names the file, the line
//      when known, the table and the key, what was given and what is allowed:
//        "crunchd.toml:4: [cpu] workers must be an integer in 1..1024 (or 0 for
//         one per core), got 5000"
//   2. Finalize: command-line overrides (checked by the same rules, the message
//      naming the flag), then the defaults that depend on the machine
//      (cpu.workers = 0, io.data_dir = ""), then the rules between keys
//      (cpu.arena_bytes and limits.max_queued_bytes against the other [limits];
//      a TCP listen address needs [server] tls_cert_file and tls_key_file) and
//      the files the [server] keys name (readable; the token file not readable
//      by other users).
//
// After a successful Finalize: cpu.workers is in 1..1024 and io.data_dir is an
// absolute path. server.listen may still be empty: the caller supplies the
// default address (rpc/default_address.h).
//
// Nothing here throws. Thread safety: the structs are plain values; the
// functions keep no state. Finalize reads the process environment
// (STATE_DIRECTORY, XDG_STATE_HOME, HOME), so it must not race with setenv().

#ifndef CRUNCH_DAEMON_CONFIG_H_
#define CRUNCH_DAEMON_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace crunch::daemon {

struct ServerConfig {
  // gRPC addresses: "unix:/path" or "host:port" / "[v6]:port". Empty: the default address.
  std::vector<std::string> listen;
  // On SIGTERM, how long in-flight tasks may finish (0..3600000).
  uint32_t drain_grace_ms = 10000;
  // How long a finished Submit()ted task's result is kept for Wait() (1000..86400000).
  uint32_t result_ttl_ms = 300000;
  // How many finished results are kept at most (1..10000000).
  uint32_t max_kept_results = 100000;

  // Who may call over a unix socket (the front-end reads SO_PEERCRED):
  // a peer passes if its uid is in allow_uids, or its primary or a supplementary
  // gid is in allow_gids; root always passes. Both empty: anyone who can open
  // the 0660 socket. Each id in 0..4294967294.
  std::vector<uint32_t> allow_uids;
  std::vector<uint32_t> allow_gids;
  // TLS for TCP listen addresses (required by Finalize when there is one):
  // PEM certificate chain and private key, absolute paths or "".
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CAs; if set, a TCP client must present a certificate signed by one.
  std::string tls_client_ca_file;
  // A file holding the bearer token every call must carry ("authorization:
  // Bearer TOKEN"), on every transport; "" for none. See ReadTokenFile().
  std::string token_file;

  bool operator==(const ServerConfig&) const = default;
};

struct CpuConfig {
  // Worker processes; 0 means one per online core (resolved by Finalize), else 1..1024.
  uint32_t workers = 0;
  uint32_t queue_capacity = 10000;   // 1..10000000
  uint32_t task_timeout_ms = 60000;  // Default per-task timeout, 1..86400000.
  // The most tasks dispatched ahead to each worker, 1..64; the pool goes this
  // deep only for short tasks (see daemon/cpu_pool.h).
  uint32_t in_flight_per_worker = 8;
  // How long a side spins before sleeping on the doorbell, 0..10000000. Short:
  // with as many workers as cores, a spinning worker takes the CPU the daemon
  // needs to feed it (50 us halved noop throughput on 2 cores).
  uint64_t spin_ns = 2000;
  // Shared payload arena, 1 MiB..64 GiB; Finalize requires
  // arena_bytes >= 2 * (limits.max_payload_bytes + limits.max_output_bytes).
  uint64_t arena_bytes = 1ull << 30;
  // Absolute path, or "" for crunch_worker next to the crunchd executable (resolved elsewhere).
  std::string worker_path;
  // Recycling: a worker is replaced between tasks once it has completed this
  // many tasks (0: never; else 1..10^12) ...
  uint64_t max_tasks_per_worker = 0;
  // ... or once its resident memory exceeds this (0: never; else 1 MiB..1 TiB,
  // checked about once a second while it works).
  uint64_t max_worker_rss_bytes = 0;
  // Crash loops: a CPU kind whose tasks killed their worker this many times in
  // a row (0: never; else 1..1000) is refused for quarantine_ms
  // (1..86400000); see daemon/scheduler.h.
  uint32_t quarantine_after = 3;
  uint32_t quarantine_ms = 30000;
  // Per-worker limits (daemon/worker_limits.h); 0 leaves each unchanged.
  // Address space beyond what a worker maps at start: 0, or 16 MiB..1 TiB.
  uint64_t worker_address_space_bytes = 0;
  // RLIMIT_CPU of each worker process over its life: 0, or 2..31536000.
  uint32_t worker_cpu_seconds = 0;
  // Added to crunchd's nice value for the workers: 0..19.
  uint32_t worker_nice = 0;
  // RLIMIT_NOFILE of each worker: 0, or 16..1048576.
  uint32_t worker_open_files = 0;
  // The workers' seccomp filter (daemon/worker_seccomp.h); off only to debug.
  bool seccomp = true;

  bool operator==(const CpuConfig&) const = default;
};

struct IoConfig {
  uint32_t threads = 16;             // 1..1024
  uint32_t queue_capacity = 10000;   // 1..10000000
  uint32_t task_timeout_ms = 60000;  // 1..86400000
  // Absolute path, or "" for the default, resolved by Finalize: $STATE_DIRECTORY
  // (systemd) if set, else /var/lib/crunchd for root, else $XDG_STATE_HOME/crunchd
  // or $HOME/.local/state/crunchd.
  std::string data_dir;
  // Hosts http.get may reach: "host", "host:port", "[v6]", "[v6]:port", or "*"
  // for any. Empty: none. "*" does not reach loopback or private addresses, and
  // link-local and cloud metadata addresses only when listed as addresses
  // (daemon/kinds/internal/http_allow_list.h).
  std::vector<std::string> http_allow;
  // Redirects http.get follows, each hop checked like the first URL (0..20; 0: none).
  uint32_t http_max_redirects = 5;
  // How long http.get waits for a connection to be established (1..600000).
  uint32_t http_connect_timeout_ms = 10000;

  bool operator==(const IoConfig&) const = default;
};

struct LimitsConfig {
  uint64_t max_payload_bytes = 16ull << 20;  // 0..1 GiB
  uint64_t max_output_bytes = 64ull << 20;   // 1 KiB..1 GiB
  // Payload bytes that accepted tasks may hold until they end (queued or
  // running), 1 MiB..1 TiB; a task that would go over is refused with
  // RESOURCE_EXHAUSTED. Bounds the daemon's memory under overload together
  // with the queue capacities. Finalize requires >= max_payload_bytes.
  uint64_t max_queued_bytes = 1ull << 30;
  // Parameters in one request (1..1024), and the longest name or value of one
  // (1 B..1 MiB); checked before anything copies or parses them, a request
  // over either is refused with RESOURCE_EXHAUSTED. The built-in kinds take
  // at most 3 parameters; 8 KiB fits any path (PATH_MAX) and long URLs.
  uint32_t max_params = 64;
  uint64_t max_param_bytes = 8192;

  bool operator==(const LimitsConfig&) const = default;
};

struct LogConfig {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text, json

  bool operator==(const LogConfig&) const = default;
};

struct MetricsConfig {
  // Where the Prometheus endpoint (GET /metrics) listens: "host:port" or
  // "[v6]:port". Empty (the default): no endpoint.
  std::string listen;

  bool operator==(const MetricsConfig&) const = default;
};

struct PluginsConfig {
  // Shared libraries that add CPU kinds (crunch/plugin.h), as absolute paths.
  // Workers load them in this order after the built-in kinds; a kind name
  // defined twice is an error naming both files (daemon/kinds/plugin_loader.h).
  std::vector<std::string> paths;
  // How long a worker may take to load the kinds (every plugin's
  // crunch_plugin_init) and attach; also the limit of the probe that reads
  // them for the daemon. 100..600000.
  uint32_t init_timeout_ms = 10000;

  bool operator==(const PluginsConfig&) const = default;
};

struct Config {
  ServerConfig server;
  CpuConfig cpu;
  IoConfig io;
  LimitsConfig limits;
  LogConfig log;
  MetricsConfig metrics;
  PluginsConfig plugins;

  bool operator==(const Config&) const = default;
};

// Parses TOML text; `origin` names the source in messages ("crunchd.toml:12: ...").
// Keys left out keep their defaults. Unknown tables and keys, wrong types and
// out-of-range values are INVALID_ARGUMENT naming the table and key; syntax
// errors give the line, column and toml++'s description.
absl::StatusOr<Config> ParseConfig(std::string_view toml_text, std::string_view origin);

// Reads and parses the file at `path`. A file that cannot be read is an error
// naming the path and the errno text, with the errno's code (NOT_FOUND, ...);
// a file over 1 MiB is INVALID_ARGUMENT (a wrong path such as /dev/zero).
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Command-line flags; each one that is set overrides the file.
struct ConfigOverrides {
  std::vector<std::string> listen;            // --listen; non-empty replaces server.listen.
  std::optional<uint32_t> workers;            // --workers
  std::optional<uint32_t> io_threads;         // --io-threads
  std::optional<std::string> log_level;       // --log-level
  std::optional<std::string> metrics_listen;  // --metrics-listen
};

// Applies `overrides` (checked like the file's keys; the message names the
// flag: "--workers must be ..."), resolves cpu.workers = 0 to the CPUs this
// process may run on and io.data_dir = "" as described in IoConfig, then checks
// the rules between keys and reads the TLS and token files. Errors are
// INVALID_ARGUMENT, or FAILED_PRECONDITION when io.data_dir has no default (not
// root, no $STATE_DIRECTORY, no absolute $XDG_STATE_HOME or $HOME) or the token
// file is readable by others, or a file's errno code. On error `*config` may be
// partly updated.
absl::Status Finalize(Config* config, const ConfigOverrides& overrides);

// The bearer token in `path` ([server] token_file): the file's text without
// trailing whitespace, 16..4096 visible ASCII characters. The file must be a
// regular file that other users can neither read nor write (mode 0600 or 0640,
// say): a token everyone can read protects nothing. Errors name the file and
// say what is allowed (FAILED_PRECONDITION for the mode, the errno's code when
// it cannot be read, INVALID_ARGUMENT for its content).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// The whole PEM file `path` named by `key` ("[server] tls_cert_file"), at most
// 1 MiB and holding a "-----BEGIN " block; errors name the key and the file.
absl::StatusOr<std::string> ReadPemFile(std::string_view key, const std::string& path);

// Whether `address` is a TCP (not a unix:) listen address.
bool IsTcpListenAddress(std::string_view address);

// Whether `address` is a listen address crunchd accepts: "unix:/abs/path" (or
// "unix:///abs/path"), "host:port" or "[v6]:port", port in 1..65535. The
// message quotes the address and lists the allowed forms; callers prefix the
// key or flag.
absl::Status ValidateListenAddress(std::string_view address);

// The configuration as TOML: a header per table and one "key = value" line per
// key, so it can be logged, shown by crunchd --check-config --verbose, or
// pasted into a file.
std::string DescribeConfig(const Config& config);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_CONFIG_H_
