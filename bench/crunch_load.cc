// crunch_load: drives tasks at a crunch.v1 server and measures throughput and
// latency. The load tool of crunchd's front-end benchmark (bench/frontend_bench.py),
// run unchanged against crunchd and against crunch_echo_server.
//
// Modes:
//   unary   N calls of Run in flight; when one ends the next starts. Generic
//           (byte-buffer) calls, the request serialized once for the run.
//   stream  one RunStream per client thread with N tasks in flight on it (split
//           between threads); when a result comes back the next task is written.
//           Latency is from the Write of a task to the Read of its result,
//           matched by the request's tag (the tag is the in-flight slot).
//   --rate R  open loop (unary): Run calls start on a fixed schedule, R per
//           second over all threads, whether or not earlier ones ended
//           (`--in-flight` caps how many may be outstanding; a call the cap
//           holds back is counted as "held"). Calls refused with
//           RESOURCE_EXHAUSTED are counted apart, with their own latency: the
//           overload benchmark (bench/overload_bench.py) reads both.
//
// Threads: `--threads` client threads (default 1), each with its own channel
// (its own connection), completion queue and share of the calls in flight;
// the thread polls its queue and owns every call on it, so nothing is shared
// but a few atomics (stop, the measured count). Retries are off on the
// channel (a retry filter per call is client cost, and no call is retried).
//
// Measurement: the threads connect, then run `--warmup` seconds unmeasured,
// then the window opens: every completion inside it is counted and its
// latency kept. The window closes after `--seconds`, or when `--tasks`
// completions were counted; the calls still in flight finish unmeasured.
// Output: one JSON line on stdout, a readable line on stderr.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crunch/v1/crunch.grpc.pb.h"

namespace crunch::bench {
namespace {

namespace v1 = crunch::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string address;
  std::string mode = "unary";
  int in_flight = 1;
  uint64_t tasks = 0;  // 0: run for `seconds`.
  double seconds = 5.0;
  double warmup = 1.0;
  std::string kind = "noop";
  std::vector<std::string> params;  // "key=value"
  size_t payload_bytes = 0;
  int threads = 1;
  double rate = 0;  // Calls per second, open loop; 0: closed loop.
};

// The measurement window, shared by the client threads and main.
class Window {
 public:
  explicit Window(uint64_t tasks) : tasks_(tasks) {}

  void Open() {
    start_ = Clock::now();
    open_.store(true, std::memory_order_release);
  }
  // True while completions count. Called on every completion.
  bool open() const {
    return open_.load(std::memory_order_relaxed) && !closed_.load(std::memory_order_relaxed);
  }
  bool closed() const { return closed_.load(std::memory_order_relaxed); }
  // Counts one completion; closes the window at the `--tasks`-th.
  void Count() {
    if (tasks_ != 0 && counted_.fetch_add(1, std::memory_order_relaxed) + 1 == tasks_) Close();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed)) return;
    end_ = Clock::now();
    closed_.store(true, std::memory_order_relaxed);
    cv_.notify_all();
  }
  // Main: waits until Count() closes the window or `timeout` passes.
  void WaitClosed(Clock::duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return closed_.load(std::memory_order_relaxed); });
  }
  double seconds() const { return std::chrono::duration<double>(end_ - start_).count(); }

 private:
  const uint64_t tasks_;
  std::atomic<bool> open_{false};
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> counted_{0};
  Clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  Clock::time_point end_;  // Written once under mu_, read by main after the threads end.
};

// What one client thread measured.
struct Sample {
  std::vector<uint32_t> latencies_ns;  // Of the completions inside the window.
  std::vector<uint32_t> rejected_ns;   // Open loop: RESOURCE_EXHAUSTED answers inside the window.
  uint64_t held = 0;                   // Open loop: calls not started for the in-flight cap.
  uint64_t errors = 0;                 // Over the whole run, warm-up included.
  size_t reply_bytes = 0;              // Size of a reply, to check both servers send the same.
  std::string first_error;
  std::string setup_error;  // Non-empty: the thread never ran.

  void Record(Clock::time_point start, Clock::time_point end, Window& window) {
    if (!window.open()) return;
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
    latencies_ns.push_back(static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX)));
    window.Count();
  }
  void RecordRejected(Clock::time_point start, Clock::time_point end, Window& window) {
    if (!window.open()) return;
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
    rejected_ns.push_back(static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX)));
  }
  void Error(std::string message) {
    if (errors++ == 0) first_error = std::move(message);
  }
};

std::shared_ptr<grpc::Channel> Connect(const Options& options, int index, Sample* sample) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // A distinct argument per thread gives each thread its own connection.
  args.SetInt("crunch_load.channel", index);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    sample->setup_error = "cannot connect to " + options.address + " within 10 s";
    return nullptr;
  }
  return channel;
}

v1::TaskRequest MakeRequest(const Options& options) {
  v1::TaskRequest request;
  request.set_kind(options.kind);
  request.set_payload(std::string(options.payload_bytes, 'x'));
  for (const std::string& param : options.params) {
    const size_t eq = param.find('=');
    (*request.mutable_params())[param.substr(0, eq)] =
        eq == std::string::npos ? "" : param.substr(eq + 1);
  }
  return request;
}

// The run's one request, serialized once for every call.
grpc::ByteBuffer SerializedRequest(const Options& options) {
  grpc::ByteBuffer request;
  bool own_buffer = false;
  grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::TaskRequest>(MakeRequest(options), &request,
                                                                   &own_buffer);
  return request;
}

// One generic Run call; its address is its completion-queue tag.
struct UnaryCall {
  grpc::ClientContext context;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  grpc::ByteBuffer reply;
  grpc::Status status;
  Clock::time_point start;
};
const char kRunMethod[] = "/crunch.v1.Crunch/Run";

// Starts a Run call on `cq`; its completion's tag is the returned call.
UnaryCall* StartRun(grpc::GenericStub& stub, const grpc::ByteBuffer& request,
                    grpc::CompletionQueue* cq, Clock::time_point start) {
  UnaryCall* call = new UnaryCall;
  call->start = start;
  call->reader = stub.PrepareUnaryCall(&call->context, kRunMethod, request, cq);
  call->reader->StartCall();
  call->reader->Finish(&call->reply, &call->status, call);
  return call;
}

// Unary: `in_flight` Run calls on one queue, each replaced as it ends.
void RunUnary(const Options& options, int index, int in_flight, Window& window, std::latch& ready,
              Sample* sample) {
  std::shared_ptr<grpc::Channel> channel = Connect(options, index, sample);
  ready.count_down();
  if (channel == nullptr) return;
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  const grpc::ByteBuffer request = SerializedRequest(options);
  int outstanding = 0;
  auto issue = [&] {
    StartRun(stub, request, &cq, Clock::now());
    ++outstanding;
  };
  for (int i = 0; i < in_flight; ++i) issue();
  void* tag = nullptr;
  bool ok = false;
  while (outstanding > 0 && cq.Next(&tag, &ok)) {
    std::unique_ptr<UnaryCall> call(static_cast<UnaryCall*>(tag));
    --outstanding;
    if (call->status.ok()) {
      sample->Record(call->start, Clock::now(), window);
      sample->reply_bytes = call->reply.Length();
    } else {
      sample->Error(call->status.error_message());
    }
    if (!window.closed()) issue();
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// Open loop: a Run call every 1/rate seconds (this thread's share of --rate),
// up to `in_flight` outstanding; until the window closes.
void RunRate(const Options& options, int index, int in_flight, Window& window, std::latch& ready,
             Sample* sample) {
  std::shared_ptr<grpc::Channel> channel = Connect(options, index, sample);
  ready.count_down();
  if (channel == nullptr) return;
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  const grpc::ByteBuffer request = SerializedRequest(options);
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.threads / options.rate));
  int outstanding = 0;
  Clock::time_point next = Clock::now();
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (!window.closed()) {
      for (; next <= now; next += interval) {
        if (outstanding >= in_flight) {
          if (window.open()) ++sample->held;
          continue;
        }
        StartRun(stub, request, &cq, now);
        ++outstanding;
      }
    } else if (outstanding == 0) {
      break;
    }
    void* tag = nullptr;
    bool ok = false;
    const Clock::time_point wake = window.closed() ? now + std::chrono::milliseconds(100) : next;
    // gRPC takes system_clock deadlines only.
    const auto deadline = std::chrono::system_clock::now() + (wake - Clock::now());
    if (cq.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) continue;
    std::unique_ptr<UnaryCall> call(static_cast<UnaryCall*>(tag));
    --outstanding;
    if (call->status.ok()) {
      sample->Record(call->start, Clock::now(), window);
    } else if (call->status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      sample->RecordRejected(call->start, Clock::now(), window);
    } else {
      sample->Error(call->status.error_message());
    }
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

// Stream: one RunStream with `in_flight` tasks in flight; one Write and one
// Read outstanding at a time (gRPC's rule), tasks waiting to be written queued.
class StreamDriver {
 public:
  StreamDriver(const Options& options, int in_flight, Window& window, Sample* sample)
      : in_flight_(in_flight),
        window_(window),
        sample_(sample),
        request_(MakeRequest(options)),
        started_(static_cast<size_t>(in_flight)) {}

  void Run(const std::shared_ptr<grpc::Channel>& channel) {
    v1::Crunch::Stub stub(channel);
    stream_ = stub.PrepareAsyncRunStream(&context_, &cq_);
    stream_->StartCall(TagOf(Op::kStart));
    void* tag = nullptr;
    bool ok = false;
    while (!done_ && cq_.Next(&tag, &ok))
      OnEvent(static_cast<Op>(reinterpret_cast<intptr_t>(tag)), ok);
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

 private:
  enum class Op : intptr_t { kStart = 1, kRead, kWrite, kWritesDone, kFinish };
  static void* TagOf(Op op) { return reinterpret_cast<void*>(static_cast<intptr_t>(op)); }

  void OnEvent(Op op, bool ok) {
    switch (op) {
      case Op::kStart:
        if (!ok) {
          sample_->setup_error = "RunStream could not start";
          done_ = true;
          return;
        }
        stream_->Read(&result_, TagOf(Op::kRead));
        for (int slot = 0; slot < in_flight_; ++slot) to_write_.push_back(slot);
        WriteNext();
        return;
      case Op::kRead: {
        if (!ok) {  // The server ended the stream.
          stream_->Finish(&status_, TagOf(Op::kFinish));
          return;
        }
        const Clock::time_point now = Clock::now();
        --outstanding_;
        const uint64_t slot = result_.tag();
        if (slot >= started_.size()) {
          sample_->Error("a result with an unknown tag " + std::to_string(slot));
        } else if (result_.code() != 0) {
          sample_->Error(result_.error());
        } else {
          sample_->Record(started_[slot], now, window_);
          if ((++reads_ & 1023) == 1) sample_->reply_bytes = result_.ByteSizeLong();
        }
        if (window_.closed()) {
          to_write_.clear();
        } else if (slot < started_.size()) {
          to_write_.push_back(static_cast<int>(slot));
        }
        result_.Clear();
        stream_->Read(&result_, TagOf(Op::kRead));
        WriteNext();
        return;
      }
      case Op::kWrite:
        writing_ = false;
        if (!ok) {  // The stream broke; the Read reports how.
          to_write_.clear();
          return;
        }
        WriteNext();
        return;
      case Op::kWritesDone:
        return;  // The server answers with the end of the stream (a failed Read).
      case Op::kFinish:
        if (!status_.ok()) sample_->Error("RunStream ended: " + status_.error_message());
        done_ = true;
        return;
    }
  }

  void WriteNext() {
    if (writing_) return;
    if (to_write_.empty()) {
      if (window_.closed() && outstanding_ == 0 && !writes_done_) {
        writes_done_ = true;
        stream_->WritesDone(TagOf(Op::kWritesDone));
      }
      return;
    }
    const int slot = to_write_.front();
    to_write_.pop_front();
    request_.set_tag(static_cast<uint64_t>(slot));
    started_[static_cast<size_t>(slot)] = Clock::now();
    grpc::WriteOptions options;
    // More tasks are waiting: let gRPC put them in fewer frames.
    if (!to_write_.empty()) options.set_buffer_hint();
    writing_ = true;
    ++outstanding_;
    stream_->Write(request_, options, TagOf(Op::kWrite));
  }

  const int in_flight_;
  Window& window_;
  Sample* sample_;
  v1::TaskRequest request_;
  std::vector<Clock::time_point> started_;  // By slot: when its task was written.
  grpc::CompletionQueue cq_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::TaskRequest, v1::TaskResult>> stream_;
  v1::TaskResult result_;
  grpc::Status status_;
  std::deque<int> to_write_;
  int outstanding_ = 0;  // Written, result not read yet.
  uint64_t reads_ = 0;
  bool writing_ = false;
  bool writes_done_ = false;
  bool done_ = false;
};

void RunStream(const Options& options, int index, int in_flight, Window& window, std::latch& ready,
               Sample* sample) {
  std::shared_ptr<grpc::Channel> channel = Connect(options, index, sample);
  ready.count_down();
  if (channel == nullptr) return;
  StreamDriver driver(options, in_flight, window, sample);
  driver.Run(channel);
}

double Percentile(const std::vector<uint32_t>& sorted_ns, double p) {
  if (sorted_ns.empty()) return 0;
  const size_t i = std::min(sorted_ns.size() - 1, static_cast<size_t>(p * sorted_ns.size()));
  return sorted_ns[i] / 1000.0;
}

int Main(const Options& options) {
  Window window(options.tasks);
  std::vector<Sample> samples(static_cast<size_t>(options.threads));
  std::latch ready(options.threads);
  std::vector<std::thread> threads;
  for (int i = 0; i < options.threads; ++i) {
    // Calls in flight split between the threads, the remainder to the first ones.
    const int share =
        options.in_flight / options.threads + (i < options.in_flight % options.threads);
    auto* body = options.rate > 0 ? &RunRate : options.mode == "unary" ? &RunUnary : &RunStream;
    threads.emplace_back(body, std::cref(options), i, share, std::ref(window), std::ref(ready),
                         &samples[static_cast<size_t>(i)]);
  }
  ready.wait();
  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup));
  window.Open();
  if (options.tasks != 0) {
    window.WaitClosed(std::chrono::minutes(10));
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  }
  window.Close();
  for (std::thread& t : threads) t.join();

  std::vector<uint32_t> all, rejected;
  uint64_t errors = 0, held = 0;
  size_t reply_bytes = 0;
  for (const Sample& s : samples) {
    if (!s.setup_error.empty()) {
      std::fprintf(stderr, "crunch_load: %s\n", s.setup_error.c_str());
      return 1;
    }
    all.insert(all.end(), s.latencies_ns.begin(), s.latencies_ns.end());
    rejected.insert(rejected.end(), s.rejected_ns.begin(), s.rejected_ns.end());
    errors += s.errors;
    held += s.held;
    if (!s.first_error.empty())
      std::fprintf(stderr, "crunch_load: error: %s\n", s.first_error.c_str());
    reply_bytes = std::max(reply_bytes, s.reply_bytes);
  }
  std::sort(all.begin(), all.end());
  std::sort(rejected.begin(), rejected.end());
  const double seconds = window.seconds();
  const double rate = seconds > 0 ? all.size() / seconds : 0;
  const double p50 = Percentile(all, 0.50);
  const double p90 = Percentile(all, 0.90);
  const double p99 = Percentile(all, 0.99);
  std::printf(
      "{\"mode\": \"%s\", \"in_flight\": %d, \"threads\": %d, \"tasks\": %zu, \"seconds\": %.3f, "
      "\"tasks_per_s\": %.0f, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
      "\"p999_us\": %.1f, \"max_us\": %.1f, \"rate\": %.1f, \"rejected\": %zu, "
      "\"reject_p50_us\": %.1f, \"reject_p99_us\": %.1f, \"reject_max_us\": %.1f, \"held\": %lu, "
      "\"errors\": %lu, \"kind\": \"%s\", \"payload_bytes\": %zu, \"reply_bytes\": %zu}\n",
      options.rate > 0 ? "rate" : options.mode.c_str(), options.in_flight, options.threads,
      all.size(), seconds, rate, p50, p90, p99, Percentile(all, 0.999), Percentile(all, 1.0),
      options.rate, rejected.size(), Percentile(rejected, 0.50), Percentile(rejected, 0.99),
      Percentile(rejected, 1.0), static_cast<unsigned long>(held),
      static_cast<unsigned long>(errors), options.kind.c_str(), options.payload_bytes, reply_bytes);
  std::fprintf(stderr,
               "crunch_load: %s, %d in flight, %d thread(s): %zu tasks in %.2f s = %.0f tasks/s; "
               "latency p50 %.1f us, p90 %.1f us, p99 %.1f us; %lu errors\n",
               options.mode.c_str(), options.in_flight, options.threads, all.size(), seconds, rate,
               p50, p90, p99, static_cast<unsigned long>(errors));
  return errors == 0 ? 0 : 3;
}

}  // namespace
}  // namespace crunch::bench

int main(int argc, char** argv) {
  crunch::bench::Options options;
  CLI::App app(
      "crunch_load: drives tasks at a crunch.v1 server (crunchd, or crunch_echo_server as the "
      "baseline) and prints throughput and latency percentiles as one JSON line.",
      "crunch_load");
  app.add_option("--address", options.address, "server address: unix:/path or host:port")
      ->required();
  app.add_option("--mode", options.mode, "unary (Run calls) or stream (one RunStream per thread)")
      ->check(CLI::IsMember({"unary", "stream"}));
  app.add_option("--in-flight", options.in_flight, "tasks in flight at any time (default 1)")
      ->check(CLI::Range(1, 100000));
  CLI::Option* tasks =
      app.add_option("--tasks", options.tasks, "measure this many completed tasks");
  CLI::Option* seconds =
      app.add_option("--seconds", options.seconds, "measure for this long (default 5)")
          ->check(CLI::PositiveNumber);
  tasks->excludes(seconds);
  app.add_option("--warmup", options.warmup, "seconds of unmeasured load first (default 1)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--kind", options.kind, "task kind (default noop)");
  app.add_option("--param", options.params, "task parameter KEY=VALUE (repeatable)");
  app.add_option("--rate", options.rate,
                 "open loop: start this many Run calls per second whatever the answers "
                 "(--in-flight caps the outstanding ones)")
      ->check(CLI::PositiveNumber);
  app.add_option("--payload-bytes", options.payload_bytes, "payload size (default 0)");
  app.add_option("--threads", options.threads,
                 "client threads, each with its own channel and completion queue (default 1)")
      ->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);
  if (options.threads > options.in_flight) {
    std::fprintf(stderr, "crunch_load: --threads must be at most --in-flight (%d), got %d\n",
                 options.in_flight, options.threads);
    return 2;
  }
  if (options.rate > 0 && options.mode != "unary") {
    std::fprintf(stderr, "crunch_load: --rate drives Run calls: use it with --mode unary\n");
    return 2;
  }
  return crunch::bench::Main(options);
}
