// How crunchctl shows things: the status summary, the kinds list, JSON, the
// batch summary, durations and sizes. Pure functions of their inputs, so the
// layout is tested without a daemon (format_test.cc).

#ifndef CRUNCH_CLIENTS_CLI_FORMAT_H_
#define CRUNCH_CLIENTS_CLI_FORMAT_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "crunch/v1/crunch.pb.h"

namespace crunch::cli {

// Version, pid and uptime; the workers table; the pools; the counters.
std::string FormatStatus(const crunch::v1::DaemonStatus& status);

// Every kind with its pool and description, then its parameters.
std::string FormatKinds(const crunch::v1::ListKindsReply& kinds);

// The message as JSON with the .proto field names (and zero values shown), pretty-printed.
std::string ToJson(const google::protobuf::Message& message);

// "850 us", "12.3 ms", "4.56 s".
std::string FormatMicros(uint64_t us);
// "45s", "3m 05s", "2h 03m 04s", "3d 04h 05m".
std::string FormatUptime(uint64_t ms);
// Bytes as MiB with one decimal: "12.3".
std::string FormatMiB(uint64_t bytes);

// True when `bytes` would garble a terminal: a NUL, or not valid UTF-8.
bool LooksBinary(std::string_view bytes);

// The nearest-rank percentile (0 < p <= 100) of ascending `sorted`; 0 if empty.
uint64_t Percentile(const std::vector<uint64_t>& sorted, double p);

struct BatchErrors {
  int code = 0;  // grpc::StatusCode.
  uint64_t count = 0;
  std::string first_message;
};

struct BatchSummary {
  uint64_t tasks = 0;
  uint64_t succeeded = 0;
  double wall_seconds = 0;
  std::vector<uint64_t> latencies_us;         // Client-measured, send to result, ascending.
  std::map<std::string, BatchErrors> errors;  // Code name -> failures.
};

// The end-of-batch report: tasks, wall time, tasks/s, latency percentiles, errors by code.
std::string FormatBatchSummary(const BatchSummary& summary);

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_FORMAT_H_
