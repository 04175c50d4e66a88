#include "rpc/proto_conversion.h"

#include <unistd.h>

#include "crunch/version.h"

namespace crunch::rpc {

daemon::TaskRequest FromProto(crunch::v1::TaskRequest&& request,
                              daemon::TaskRequest::LeftOut left_out) {
  daemon::TaskRequest r;
  r.kind = std::move(*request.mutable_kind());
  r.payload = std::move(*request.mutable_payload());
  for (auto& [k, v] : *request.mutable_params()) r.params.emplace(k, std::move(v));
  r.tag = request.tag();
  r.timeout_ms = request.timeout_ms();
  r.priority = request.priority();
  r.idempotency_key = std::move(*request.mutable_idempotency_key());
  r.left_out = std::move(left_out);
  return r;
}

void ToProto(const daemon::TaskResult& result, crunch::v1::TaskResult* out) {
  out->set_task_id(result.task_id);
  out->set_tag(result.tag);
  out->set_code(static_cast<int32_t>(result.code));
  out->set_error(result.error);
  out->set_output(result.output);
  out->set_pool(daemon::PoolName(result.pool));
  out->set_worker_pid(result.worker_pid);
  out->set_queue_us(result.queue_us);
  out->set_run_us(result.run_us);
}

void RejectedToProto(uint64_t tag, const absl::Status& status, crunch::v1::TaskResult* out) {
  out->set_tag(tag);
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_error(std::string(status.message()));
}

void ToProto(const daemon::KindRegistry& kinds, crunch::v1::ListKindsReply* out) {
  for (const daemon::KindSpec& k : kinds.kinds()) {
    crunch::v1::KindInfo* info = out->add_kinds();
    info->set_name(k.name);
    info->set_pool(daemon::PoolName(k.pool));
    info->set_description(k.description);
    info->set_source(k.source);
    for (const daemon::ParamSpec& p : k.params) {
      crunch::v1::ParamInfo* param = info->add_params();
      param->set_name(p.name);
      param->set_type(p.type == daemon::ParamSpec::Type::kInt ? "int" : "string");
      param->set_default_value(p.default_value);
      param->set_required(p.required);
      param->set_min(p.min);
      param->set_max(p.max);
      param->set_description(p.description);
    }
  }
}

void ToProto(const daemon::SchedulerSnapshot& s, std::chrono::steady_clock::time_point started,
             crunch::v1::DaemonStatus* out) {
  out->set_version(crunch::kVersion);
  out->set_pid(static_cast<uint32_t>(::getpid()));
  out->set_uptime_ms(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count()));
  for (const daemon::WorkerSnapshot& w : s.workers) {
    crunch::v1::WorkerInfo* info = out->add_workers();
    info->set_slot(w.slot);
    info->set_pid(w.pid);
    info->set_state(w.state);
    info->set_tasks_done(w.tasks_done);
    info->set_restarts(w.restarts);
    info->set_recycles(w.recycles);
    info->set_current_kind(w.current_kind);
    info->set_rss_bytes(w.rss_bytes);
  }
  for (const daemon::PoolSnapshot& p : s.pools) {
    crunch::v1::PoolInfo* info = out->add_pools();
    info->set_name(p.name);
    info->set_size(p.size);
    info->set_busy(p.busy);
    info->set_queued(p.queued);
    info->set_queue_capacity(p.queue_capacity);
    crunch::v1::LatencyInfo* l = info->mutable_latency();
    l->set_p50_us(p.latency.p50_us);
    l->set_p90_us(p.latency.p90_us);
    l->set_p99_us(p.latency.p99_us);
    l->set_max_us(p.latency.max_us);
    l->set_samples(p.latency.samples);
  }
  crunch::v1::Counters* c = out->mutable_counters();
  c->set_accepted(s.accepted);
  c->set_completed(s.completed);
  c->set_failed(s.failed);
  c->set_rejected(s.rejected);
  c->set_cancelled(s.cancelled);
  for (const auto& [code, n] : s.failed_by_code) (*c->mutable_failed_by_code())[code] = n;
  out->set_draining(s.draining);
}

}  // namespace crunch::rpc
