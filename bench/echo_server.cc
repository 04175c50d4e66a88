// crunch_echo_server: the baseline for crunchd's gRPC front-end benchmark.
//
// A bare gRPC C++ async server, built from the same gRPC and the same
// generated crunch.v1 code as crunchd, that serves Run and RunStream by
// answering every request at once with a successful result and no work. For
// noop the answer is what crunchd answers (output = payload, pool "cpu", a
// worker pid, a task id, queue/run times), so both servers put the same bytes
// on the wire and the difference between them is crunchd's own cost: handing
// the request to the io_context, the scheduler, the worker round trip and
// handing the answer back.
//
// Server settings that matter for the comparison are crunchd's
// (rpc/grpc_frontend.cc): the listen address as given (a Unix socket in the
// benchmark), `--threads` completion queues (crunchd uses 2), each with its
// own thread polling it, and on every queue one Run and one RunStream request
// waited for. What crunchd has and this server does not: the cancellation
// watch on Run (AsyncNotifyWhenDone), the hop to another thread to answer,
// and the health and reflection services. Those two are not called in the
// benchmark but are not free either: gRPC 1.51 serves the default health
// service with its callback API, which starts two "nexting_thread"s, and
// reflection is a sync service, which starts a sync-server thread; all of
// them poll the same epoll set as the completion-queue threads, so any of them
// may read a request off the socket and then have to wake the thread that
// owns the call. `--with-health-service` adds the health service, to measure
// what it costs. (Reflection cannot be a flag: linking grpc++_reflection
// registers its plugin in every server the process builds.)
//
// Threads: every call lives on the queue it was accepted on and only that
// queue's thread touches it, so no call state is shared and nothing is locked.
// The main thread waits for SIGINT/SIGTERM and shuts the server down.

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "crunch/v1/crunch.grpc.pb.h"

namespace crunch::bench {
namespace {

namespace v1 = crunch::v1;
using Service = v1::Crunch::AsyncService;

// What crunchd answers for a noop task, field for field (rpc/proto_conversion.cc
// ToProto): same fields set, values of the same encoded size.
std::atomic<uint64_t> g_next_task_id{1};

void FillResult(v1::TaskRequest* request, v1::TaskResult* out) {
  out->set_task_id(g_next_task_id.fetch_add(1, std::memory_order_relaxed));
  out->set_tag(request->tag());
  out->set_code(0);
  out->set_output(std::move(*request->mutable_payload()));
  out->set_pool("cpu");
  out->set_worker_pid(static_cast<uint32_t>(::getpid()));
  out->set_queue_us(150);  // Two bytes, as crunchd's usually are under load.
  out->set_run_us(2);
}

class Tag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~Tag() = default;
};

// One Run call: wait for a request, answer it, delete itself.
class RunCall final : public Tag {
 public:
  static void Listen(Service* service, grpc::ServerCompletionQueue* cq) {
    new RunCall(service, cq);
  }

  void Proceed(bool ok) override {
    if (answered_ || !ok) {  // The answer went out, or the server is shutting down.
      delete this;
      return;
    }
    Listen(service_, cq_);
    v1::TaskResult result;
    FillResult(&request_, &result);
    answered_ = true;
    responder_.Finish(result, grpc::Status::OK, this);
  }

 private:
  RunCall(Service* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), responder_(&context_) {
    service_->RequestRun(&context_, &request_, &responder_, cq_, cq_, this);
  }
  ~RunCall() = default;

  Service* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext context_;
  v1::TaskRequest request_;
  grpc::ServerAsyncResponseWriter<v1::TaskResult> responder_;
  bool answered_ = false;
};

// One RunStream call: every request read is answered at once. As in crunchd
// (rpc/internal/run_stream_call.cc) one Read and at most one Write are
// outstanding; results waiting for the Write are queued and written with the
// buffer hint while more are queued.
class RunStreamCall {
 public:
  static void Listen(Service* service, grpc::ServerCompletionQueue* cq) {
    new RunStreamCall(service, cq);
  }

 private:
  enum class Op { kAccept, kRead, kWrite, kFinish };
  class OpTag final : public Tag {
   public:
    OpTag(RunStreamCall* call, Op op) : call_(call), op_(op) {}
    void Proceed(bool ok) override { call_->OnEvent(op_, ok); }

   private:
    RunStreamCall* call_;
    Op op_;
  };

  RunStreamCall(Service* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), stream_(&context_) {
    service_->RequestRunStream(&context_, &stream_, cq_, cq_, &accept_tag_);
  }
  ~RunStreamCall() = default;

  void OnEvent(Op op, bool ok) {
    switch (op) {
      case Op::kAccept:
        if (!ok) {
          delete this;
          return;
        }
        Listen(service_, cq_);
        stream_.Read(&incoming_, &read_tag_);
        return;
      case Op::kRead:
        if (!ok) {  // Half-close, or the client went away.
          reads_done_ = true;
          MaybeFinish();
          return;
        }
        pending_.emplace_back();
        FillResult(&incoming_, &pending_.back());
        incoming_.Clear();
        if (!write_in_flight_) WriteNext();
        stream_.Read(&incoming_, &read_tag_);
        return;
      case Op::kWrite:
        write_in_flight_ = false;
        if (!ok) {
          broken_ = true;
          pending_.clear();
        }
        if (!pending_.empty()) {
          WriteNext();
        } else {
          MaybeFinish();
        }
        return;
      case Op::kFinish:
        delete this;
        return;
    }
  }

  void WriteNext() {
    writing_ = std::move(pending_.front());
    pending_.pop_front();
    write_in_flight_ = true;
    grpc::WriteOptions options;
    if (!pending_.empty()) options.set_buffer_hint();
    stream_.Write(writing_, options, &write_tag_);
  }

  void MaybeFinish() {
    if (finishing_ || !reads_done_ || write_in_flight_ || !pending_.empty()) return;
    finishing_ = true;
    stream_.Finish(grpc::Status::OK, &finish_tag_);
  }

  Service* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::TaskResult, v1::TaskRequest> stream_;
  v1::TaskRequest incoming_;
  OpTag accept_tag_{this, Op::kAccept};
  OpTag read_tag_{this, Op::kRead};
  OpTag write_tag_{this, Op::kWrite};
  OpTag finish_tag_{this, Op::kFinish};
  std::deque<v1::TaskResult> pending_;
  v1::TaskResult writing_;
  bool write_in_flight_ = false;
  bool reads_done_ = false;
  bool broken_ = false;
  bool finishing_ = false;
};

int Serve(const std::string& listen, int threads, bool with_health_service) {
  if (listen.rfind("unix:", 0) == 0) ::unlink(listen.c_str() + 5);  // A stale socket.
  // Block the signals before any thread starts, so only sigwait() sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (with_health_service) grpc::EnableDefaultHealthCheckService(true);  // As crunchd does.
  Service service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < threads; ++i) cqs.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "crunch_echo_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::vector<std::thread> pollers;
  for (auto& cq : cqs) {
    grpc::ServerCompletionQueue* q = cq.get();
    RunCall::Listen(&service, q);
    RunStreamCall::Listen(&service, q);
    pollers.emplace_back([q] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
    });
  }
  std::fprintf(stderr, "crunch_echo_server: listening on %s with %d completion queue thread(s)%s\n",
               listen.c_str(), threads, with_health_service ? ", health service on" : "");

  int signo = 0;
  sigwait(&signals, &signo);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto& cq : cqs) cq->Shutdown();
  for (std::thread& t : pollers) t.join();
  if (listen.rfind("unix:", 0) == 0) ::unlink(listen.c_str() + 5);
  return 0;
}

}  // namespace
}  // namespace crunch::bench

int main(int argc, char** argv) {
  // As crunchd does (daemon/crunchd_main.cc): the two servers run gRPC alike.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app(
      "crunch_echo_server: serves crunch.v1 Run and RunStream by answering every task at once "
      "(a noop's answer, no work); the baseline of crunchd's front-end benchmark.",
      "crunch_echo_server");
  std::string listen;
  int threads = 2;
  app.add_option("--listen", listen, "address to serve on: unix:/path or host:port")->required();
  app.add_option("--threads", threads, "completion queues, one thread each (crunchd uses 2)")
      ->check(CLI::Range(1, 64));
  bool with_health_service = false;
  app.add_flag("--with-health-service", with_health_service,
               "also serve grpc.health.v1 as crunchd does (default: off)");
  CLI11_PARSE(app, argc, argv);
  return crunch::bench::Serve(listen, threads, with_health_service);
}
