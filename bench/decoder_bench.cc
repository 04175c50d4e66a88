// crunchd's TaskRequest/TaskBatch decoder (rpc/internal/task_request_decoder.h)
// against the baseline it replaced: gRPC's own deserializer for a typed method
// (grpc::SerializationTraits<Message>::Deserialize, protobuf's parser over the
// received slices). Messages are built as they arrive from the network: the
// payload in 16 KiB slices. Figures: docs/benchmarks.md, suite 2.

#include <benchmark/benchmark.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "crunch/v1/crunch.pb.h"
#include "rpc/internal/task_request_decoder.h"

namespace {

using crunch::rpc::internal::DecodedTask;
using crunch::rpc::internal::DecodeTaskBatch;
using crunch::rpc::internal::DecodeTaskRequest;

// crunchd's defaults but a payload limit over the largest payload here.
constexpr crunch::daemon::RequestLimits kLimits{
    .max_payload_bytes = 1 << 30, .max_params = 64, .max_param_bytes = 8192};

crunch::v1::TaskRequest Request(size_t payload_bytes) {
  crunch::v1::TaskRequest request;
  request.set_kind(payload_bytes == 0 ? "noop" : "sha256");
  request.set_tag(123456);
  request.set_payload(std::string(payload_bytes, 'x'));
  if (payload_bytes == 0) (*request.mutable_params())["n"] = "10";
  return request;
}

// `bytes` in slices of at most 16 KiB, as gRPC hands over a large message.
grpc::ByteBuffer Sliced(const std::string& bytes) {
  constexpr size_t kSlice = 16 * 1024;
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size() || slices.empty(); at += kSlice) {
    const size_t n = std::min(kSlice, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, n);
    if (n == 0) break;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

void BM_Request_Grpc(benchmark::State& state) {
  const std::string bytes = Request(static_cast<size_t>(state.range(0))).SerializeAsString();
  for (auto _ : state) {
    grpc::ByteBuffer buffer = Sliced(bytes);  // Deserialize consumes it.
    crunch::v1::TaskRequest out;
    if (!grpc::SerializationTraits<crunch::v1::TaskRequest>::Deserialize(&buffer, &out).ok()) {
      state.SkipWithError("parse failed");
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

void BM_Request_Crunchd(benchmark::State& state) {
  const std::string bytes = Request(static_cast<size_t>(state.range(0))).SerializeAsString();
  for (auto _ : state) {
    grpc::ByteBuffer buffer = Sliced(bytes);  // The same work as the baseline's.
    DecodedTask out;
    if (!DecodeTaskRequest(buffer, kLimits, &out)) {
      state.SkipWithError("decode failed");
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

std::string Batch(int tasks) {
  crunch::v1::TaskBatch batch;
  for (int i = 0; i < tasks; ++i) *batch.add_tasks() = Request(0);
  return batch.SerializeAsString();
}

void BM_Batch_Grpc(benchmark::State& state) {
  const std::string bytes = Batch(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    grpc::ByteBuffer buffer = Sliced(bytes);
    crunch::v1::TaskBatch out;
    if (!grpc::SerializationTraits<crunch::v1::TaskBatch>::Deserialize(&buffer, &out).ok()) {
      state.SkipWithError("parse failed");
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_Batch_Crunchd(benchmark::State& state) {
  const std::string bytes = Batch(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    grpc::ByteBuffer buffer = Sliced(bytes);
    std::vector<DecodedTask> out;
    if (!DecodeTaskBatch(buffer, kLimits, &out)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// Payload sizes: a noop task (none), 1 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB.
#define CRUNCH_PAYLOADS \
  Arg(0)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20)->Arg(16 << 20)->Arg(64 << 20)
BENCHMARK(BM_Request_Grpc)->CRUNCH_PAYLOADS;
BENCHMARK(BM_Request_Crunchd)->CRUNCH_PAYLOADS;
BENCHMARK(BM_Batch_Grpc)->Arg(1)->Arg(32)->Arg(256);
BENCHMARK(BM_Batch_Crunchd)->Arg(1)->Arg(32)->Arg(256);

}  // namespace

int main(int argc, char** argv) {
  // crunchd's malloc thresholds (daemon/crunchd_main.cc), so that both sides
  // allocate as they would in the daemon.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
