// ipc_test_worker: a real worker process for the ipc tests and ipc_bench.
//
//   ipc_test_worker [--mode=ring|sink|pipe|socket] [--spin-ns=N]
//                   [--pause-every=N] [--max-pause-us=N] [--seed=N]
//
// ring    attach through $CRUNCH_IPC and serve TestKind requests (default)
// sink    attach and consume requests without completing them; task ids must
//         count up from 0 (one-way throughput)
// pipe    echo 64-byte messages from fd 3 to fd 4 (baseline)
// socket  echo 64-byte messages on the socket at fd 3 (baseline)
//
// Exit status: 0 on kExit or EOF, 2 on bad usage, 65 on a wrong message,
// 70 on a corrupt ring, 78 when it cannot attach (the reason on stderr).

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "ipc/child_process.h"
#include "ipc/testing/test_protocol.h"
#include "ipc/worker_channel.h"

namespace crunch::ipc::testing {
namespace {

struct Options {
  std::string_view mode = "ring";
  long spin_ns = 50'000;
  long pause_every = 0;  // 0 = never pause
  long max_pause_us = 0;
  uint64_t seed = 1;
};

bool ParseLong(std::string_view arg, std::string_view name, long* out) {
  if (arg.substr(0, name.size()) != name) return false;
  *out = std::strtol(arg.data() + name.size(), nullptr, 10);
  return true;
}

int Usage(std::string_view arg) {
  std::fprintf(stderr,
               "ipc_test_worker: unknown argument '%.*s'; allowed: --mode=ring|sink|pipe|socket "
               "--spin-ns=N --pause-every=N --max-pause-us=N --seed=N\n",
               static_cast<int>(arg.size()), arg.data());
  return 2;
}

int EchoFds(int in_fd, int out_fd) {
  char buf[64];
  for (;;) {
    size_t got = 0;
    while (got < sizeof(buf)) {
      ssize_t n = ::read(in_fd, buf + got, sizeof(buf) - got);
      if (n == 0) return 0;
      if (n < 0) return 65;
      got += n;
    }
    if (::write(out_fd, buf, sizeof(buf)) != sizeof(buf)) return 65;
  }
}

int Serve(const Options& options) {
  absl::StatusOr<WorkerHandoff> handoff = WorkerHandoff::FromEnvironment();
  if (!handoff.ok()) {
    std::fprintf(stderr, "ipc_test_worker: %s\n", handoff.status().ToString().c_str());
    return 78;
  }
  if (absl::Status s = ExitWhenParentDies(handoff->parent_pid); !s.ok()) {
    std::fprintf(stderr, "ipc_test_worker: %s\n", s.ToString().c_str());
    return 78;
  }
  absl::StatusOr<WorkerChannel> channel = WorkerChannel::Attach(*handoff);
  if (!channel.ok()) {
    std::fprintf(stderr, "ipc_test_worker: %s\n", channel.status().ToString().c_str());
    return 78;
  }
  const SpinPolicy spin{std::chrono::nanoseconds(options.spin_ns)};
  const bool sink = options.mode == "sink";
  uint64_t rng = options.seed;
  uint64_t last_sequence = 0;
  bool have_sequence = false;
  uint64_t expected_task = 0;
  Descriptor d;
  for (;;) {
    if (channel->Receive(&d, spin) != RingResult::kOk) {
      std::fprintf(stderr, "ipc_test_worker: request ring is corrupt\n");
      return 70;
    }
    if (options.pause_every > 0 && SplitMix64(rng) % options.pause_every == 0) {
      ::usleep(static_cast<useconds_t>(SplitMix64(rng) % (options.max_pause_us + 1)));
    }
    if (d.kind == kExit) return 0;
    if (sink) {
      if (d.task_id != expected_task++) {
        std::fprintf(stderr, "ipc_test_worker: got task %lu, expected %lu\n",
                     static_cast<unsigned long>(d.task_id),
                     static_cast<unsigned long>(expected_task - 1));
        return 65;
      }
      continue;
    }
    uint32_t status = kStatusOk;
    uint64_t written = 0;
    if (d.kind == kEcho) {
      std::span<const std::byte> in = channel->Input(d);
      std::span<std::byte> out = channel->Output(d);
      std::optional<uint64_t> sequence = CheckPayload(in);
      if (!sequence) {
        status = kStatusBadChecksum;
      } else if (have_sequence && *sequence <= last_sequence) {
        status = kStatusOutOfOrder;
      } else if (out.size() < in.size()) {
        status = kStatusOutputTooSmall;
      } else {
        EchoTransform(in, out);
        written = in.size();
      }
      if (sequence) {
        last_sequence = *sequence;
        have_sequence = true;
      }
    } else if (d.kind == kCopy) {
      std::span<const std::byte> in = channel->Input(d);
      written = std::min(in.size(), d.output.length);
      std::memcpy(channel->Output(d).data(), in.data(), written);
    } else if (d.kind == kWriteForever) {
      std::span<std::byte> out = channel->Output(d);
      for (uint8_t round = 1;; ++round) {
        for (std::byte& b : out) {
          *const_cast<volatile std::byte*>(&b) = std::byte{round};
        }
      }
    } else {
      status = kStatusUnknownKind;
    }
    if (channel->Complete(d, status, written) != RingResult::kOk) {
      std::fprintf(stderr, "ipc_test_worker: completion ring is corrupt or full\n");
      return 70;
    }
  }
}

}  // namespace
}  // namespace crunch::ipc::testing

int main(int argc, char** argv) {
  using crunch::ipc::testing::Options;
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    long seed = 0;
    if (arg.substr(0, 7) == "--mode=") {
      options.mode = arg.substr(7);
    } else if (crunch::ipc::testing::ParseLong(arg, "--spin-ns=", &options.spin_ns) ||
               crunch::ipc::testing::ParseLong(arg, "--pause-every=", &options.pause_every) ||
               crunch::ipc::testing::ParseLong(arg, "--max-pause-us=", &options.max_pause_us)) {
    } else if (crunch::ipc::testing::ParseLong(arg, "--seed=", &seed)) {
      options.seed = static_cast<uint64_t>(seed);
    } else {
      return crunch::ipc::testing::Usage(arg);
    }
  }
  if (options.mode == "pipe") return crunch::ipc::testing::EchoFds(3, 4);
  if (options.mode == "socket") return crunch::ipc::testing::EchoFds(3, 3);
  if (options.mode == "ring" || options.mode == "sink") return crunch::ipc::testing::Serve(options);
  return crunch::ipc::testing::Usage(options.mode);
}
