// crunchctl run KIND --repeat N --concurrency C: a batch over RunStream.
//
// Design: tasks are numbered 0..N-1 and the number is the request's tag. Each
// stream has a writer thread that claims the next tag whenever fewer than C
// tasks are in flight over all streams and the stream holds less than its
// share of C (C divided by the streams still alive, rounded up, so each
// daemon gets an even share of the in-flight tasks and a faster one finishes
// more), and a reader (the stream's own thread) that matches each result to
// its tag. One stream per daemon named by
// --address, at most C: with one daemon, one stream. Latency is measured here,
// from just before a request is written to the moment its result is read.
// A stream that fails (the daemon went away, --deadline passed) fails its
// unanswered tasks with the stream's code; the other streams go on.
//
// Progress goes to stderr when it is a terminal, redrawn at most 10 times a
// second by the main thread; the summary goes to stdout.

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/format.h"
#include "clients/cli/session.h"
#include "clients/cli/task_io.h"

namespace crunch::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The tasks of one batch, shared by the streams' threads and the main thread.
// Thread safety: everything below mu_ is guarded by it.
class Batch {
 public:
  Batch(crunch::v1::TaskRequest request, uint64_t total, uint32_t concurrency, int64_t deadline_ms,
        size_t streams)
      : request_(std::move(request)),
        total_(total),
        concurrency_(concurrency),
        deadline_ms_(deadline_ms),
        streams_alive_(streams),
        sent_at_(total) {}

  // Runs one stream on `channel` to its end. Called on a thread of its own per stream.
  void RunStream(const std::shared_ptr<grpc::Channel>& channel);

  // Returns once every stream has ended, redrawing a progress line on stderr
  // meanwhile if `progress`.
  void AwaitStreams(bool progress);

  // REQUIRES: AwaitStreams() returned.
  BatchSummary Summary(double wall_seconds);
  // Why a stream lost its connection (OK if none did). REQUIRES: AwaitStreams() returned.
  grpc::Status connection_lost();

 private:
  struct Stream {                    // Guarded by mu_ too.
    std::set<uint64_t> outstanding;  // Tags sent, not answered.
    bool ended = false;
  };

  std::optional<uint64_t> ClaimTag(Stream* stream);
  void OnResult(Stream* stream, const crunch::v1::TaskResult& result);
  void OnStreamEnd(Stream* stream, const grpc::Status& status, bool connection_lost);
  void RecordFailureLocked(grpc::StatusCode code, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrawProgress(uint64_t done, uint64_t in_flight, uint64_t failed, double seconds) const;

  const crunch::v1::TaskRequest request_;
  const uint64_t total_;
  const uint32_t concurrency_;
  const int64_t deadline_ms_;
  const Clock::time_point started_ = Clock::now();

  std::mutex mu_;
  std::condition_variable changed_;  // A task was claimed or ended, or a stream ended.
  size_t streams_alive_ ABSL_GUARDED_BY(mu_);
  uint64_t next_tag_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Clock::time_point> sent_at_ ABSL_GUARDED_BY(mu_);  // By tag.
  std::vector<uint64_t> latencies_us_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, BatchErrors> errors_ ABSL_GUARDED_BY(mu_);
  grpc::Status last_stream_error_ ABSL_GUARDED_BY(mu_);
  grpc::Status connection_lost_ ABSL_GUARDED_BY(mu_);
};

void Batch::RunStream(const std::shared_ptr<grpc::Channel>& channel) {
  std::unique_ptr<crunch::v1::Crunch::Stub> stub = crunch::v1::Crunch::NewStub(channel);
  grpc::ClientContext context;
  if (deadline_ms_ > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(deadline_ms_));
  }
  std::unique_ptr<grpc::ClientReaderWriter<crunch::v1::TaskRequest, crunch::v1::TaskResult>>
      stream = stub->RunStream(&context);
  Stream state;
  // gRPC allows one writer and one reader on a stream at the same time.
  std::thread writer([&] {
    crunch::v1::TaskRequest request = request_;
    while (std::optional<uint64_t> tag = ClaimTag(&state)) {
      request.set_tag(*tag);
      if (!stream->Write(request)) break;  // The stream failed; Finish() says why.
    }
    stream->WritesDone();
  });
  crunch::v1::TaskResult result;
  while (stream->Read(&result)) OnResult(&state, result);
  {
    // A writer waiting for room must not wait for a stream that has ended.
    std::lock_guard<std::mutex> lock(mu_);
    state.ended = true;
  }
  changed_.notify_all();
  writer.join();
  const grpc::Status status = stream->Finish();
  OnStreamEnd(&state, status, IsConnectionLost(status, *channel));
}

std::optional<uint64_t> Batch::ClaimTag(Stream* stream) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const uint64_t alive = std::max<size_t>(streams_alive_, 1);
    const uint64_t share = (concurrency_ + alive - 1) / alive;
    return stream->ended || next_tag_ >= total_ ||
           (in_flight_ < concurrency_ && stream->outstanding.size() < share);
  });
  if (stream->ended || next_tag_ >= total_) return std::nullopt;
  const uint64_t tag = next_tag_++;
  ++in_flight_;
  sent_at_[tag] = Clock::now();
  stream->outstanding.insert(tag);
  return tag;
}

void Batch::OnResult(Stream* stream, const crunch::v1::TaskResult& result) {
  const Clock::time_point now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream->outstanding.erase(result.tag()) == 0) return;  // Not a task of this stream.
    --in_flight_;
    ++done_;
    latencies_us_.push_back(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - sent_at_[result.tag()])
            .count()));
    if (result.code() == 0) {
      ++succeeded_;
    } else {
      RecordFailureLocked(static_cast<grpc::StatusCode>(result.code()), result.error());
    }
  }
  changed_.notify_all();
}

void Batch::OnStreamEnd(Stream* stream, const grpc::Status& status, bool connection_lost) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < stream->outstanding.size(); ++i) {
      if (status.ok()) {
        RecordFailureLocked(grpc::StatusCode::INTERNAL, "the stream ended without its result");
      } else {
        RecordFailureLocked(status.error_code(), "the stream failed: " + status.error_message());
      }
    }
    in_flight_ -= stream->outstanding.size();
    done_ += stream->outstanding.size();
    stream->outstanding.clear();
    if (!status.ok()) last_stream_error_ = status;
    if (connection_lost) connection_lost_ = status;
    --streams_alive_;
  }
  changed_.notify_all();
}

void Batch::RecordFailureLocked(grpc::StatusCode code, const std::string& message) {
  BatchErrors& e = errors_[CodeName(code)];
  e.code = static_cast<int>(code);
  if (e.count++ == 0) e.first_message = message;
}

void Batch::AwaitStreams(bool progress) {
  std::unique_lock<std::mutex> lock(mu_);
  while (streams_alive_ > 0) {
    changed_.wait_for(lock, std::chrono::milliseconds(100),
                      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return streams_alive_ == 0; });
    if (progress && streams_alive_ > 0) {
      const uint64_t done = done_, in_flight = in_flight_, failed = done_ - succeeded_;
      lock.unlock();
      DrawProgress(done, in_flight, failed,
                   std::chrono::duration<double>(Clock::now() - started_).count());
      lock.lock();
    }
  }
  if (progress) std::fputs("\r\x1b[K", stderr);  // Leave the terminal clean for the summary.
  // Every stream failed before all tasks were sent: the rest never ran.
  const uint64_t unsent = total_ - next_tag_;
  const grpc::Status why = last_stream_error_.ok()
                               ? grpc::Status(grpc::StatusCode::INTERNAL, "every stream ended")
                               : last_stream_error_;
  for (uint64_t i = 0; i < unsent; ++i) {
    RecordFailureLocked(why.error_code(), "not sent: " + why.error_message());
  }
  done_ += unsent;
}

void Batch::DrawProgress(uint64_t done, uint64_t in_flight, uint64_t failed, double seconds) const {
  constexpr int kWidth = 30;
  const int filled =
      static_cast<int>(static_cast<double>(done) / static_cast<double>(total_) * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] %llu/%llu  %llu in flight  %llu failed  %.1f s\x1b[K", bar.c_str(),
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_),
               static_cast<unsigned long long>(in_flight), static_cast<unsigned long long>(failed),
               seconds);
  std::fflush(stderr);
}

BatchSummary Batch::Summary(double wall_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  BatchSummary s;
  s.tasks = total_;
  s.succeeded = succeeded_;
  s.wall_seconds = wall_seconds;
  s.latencies_us = latencies_us_;
  std::sort(s.latencies_us.begin(), s.latencies_us.end());
  s.errors = errors_;
  return s;
}

grpc::Status Batch::connection_lost() {
  std::lock_guard<std::mutex> lock(mu_);
  return connection_lost_;
}

// 0 when all succeeded; the code's status when every failure had the same code; else 1.
int BatchExitCode(const BatchSummary& s) {
  if (s.succeeded == s.tasks) return kExitOk;
  if (s.errors.size() != 1) return kExitFailure;
  return ExitCodeFor(static_cast<grpc::StatusCode>(s.errors.begin()->second.code));
}

}  // namespace

int BatchCommand(const GlobalOptions& global, const RunOptions& options) {
  absl::StatusOr<crunch::v1::TaskRequest> request = BuildRequest(options.task);
  if (!request.ok()) return ReportUsage(std::string(request.status().message()));
  if (options.concurrency == 0) return ReportUsage("--concurrency must be at least 1");

  absl::StatusOr<Connection> connection = Connection::Open(global.address, global.security);
  if (!connection.ok()) return ReportUsage(std::string(connection.status().message()));
  const int64_t deadline_ms = DeadlineMs(global, kNoDeadline);
  const size_t streams = static_cast<size_t>(
      std::min<uint64_t>({connection->address_count(), options.concurrency, options.repeat}));
  absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> channels =
      connection->ConnectMany(streams, ConnectTimeout(deadline_ms));
  if (!channels.ok()) {
    return ReportUnreachable(global.address, std::string(channels.status().message()));
  }

  const Clock::time_point start = Clock::now();
  Batch batch(*std::move(request), options.repeat, options.concurrency, deadline_ms,
              channels->size());
  std::vector<std::thread> threads;
  for (const auto& channel : *channels) {
    threads.emplace_back([&batch, channel] { batch.RunStream(channel); });
  }
  batch.AwaitStreams(/*progress=*/::isatty(STDERR_FILENO) == 1);
  for (std::thread& t : threads) t.join();
  const BatchSummary summary =
      batch.Summary(std::chrono::duration<double>(Clock::now() - start).count());
  std::fputs(FormatBatchSummary(summary).c_str(), stdout);
  if (const grpc::Status lost = batch.connection_lost(); !lost.ok()) {
    return ReportConnectionLost(global.address, lost.error_message());
  }
  return BatchExitCode(summary);
}

}  // namespace crunch::cli
