#include "clients/cli/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/client_interceptor.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clients/cli/target_list.h"
#include "crunch/v1/crunch.grpc.pb.h"

namespace crunch::cli {
namespace {

using Clock = std::chrono::system_clock;

// Adds "authorization: Bearer TOKEN" to every call.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(std::shared_ptr<const std::string> header)
      : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  std::shared_ptr<const std::string> header_;
};

class TokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::shared_ptr<const std::string> header)
      : header_(std::move(header)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(header_);
  }

 private:
  std::shared_ptr<const std::string> header_;
};

// What the channels need from SecurityOptions, with the files read.
struct ChannelSecurity {
  std::shared_ptr<const std::string> authorization;  // Null: no token.
  std::shared_ptr<grpc::ChannelCredentials> tls;     // Null: plaintext TCP.
};

absl::StatusOr<std::string> ReadFile(const std::string& option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, ": cannot read '", path, "': ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<ChannelSecurity> LoadSecurity(const SecurityOptions& options) {
  ChannelSecurity security;
  if (!options.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadFile("--token-file", options.token_file);
    if (!token.ok()) return token.status();
    absl::string_view trimmed = absl::StripAsciiWhitespace(*token);
    if (trimmed.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file: '", options.token_file, "' is empty"));
    }
    security.authorization = std::make_shared<const std::string>(absl::StrCat("Bearer ", trimmed));
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (options.tls || !options.tls_ca.empty() || !options.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      absl::StatusOr<std::string> ca = ReadFile("--tls-ca", options.tls_ca);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (!options.tls_cert.empty()) {
      absl::StatusOr<std::string> cert = ReadFile("--tls-cert", options.tls_cert);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFile("--tls-key", options.tls_key);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    security.tls = grpc::SslCredentials(ssl);
  }
  return security;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const ChannelSecurity& security) {
  grpc::ChannelArguments args;
  // Task outputs may be as large as the daemon's max_output_bytes (64 MiB by
  // default), far over gRPC's 4 MiB default for received messages.
  args.SetMaxReceiveMessageSize(-1);
  // `top` outlives daemon restarts: reconnect within a second, not gRPC's up to 2 minutes.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Unix sockets are plaintext whatever the options say.
  const bool tls = security.tls != nullptr && !absl::StartsWith(target, "unix:");
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      tls ? security.tls : grpc::InsecureChannelCredentials();
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (security.authorization != nullptr) {
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(security.authorization));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args,
                                                                 std::move(interceptors));
}

// Waits for READY; false at the deadline or as soon as a connection attempt fails.
bool WaitReady(grpc::Channel& channel, Clock::time_point deadline) {
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    if (!channel.WaitForStateChange(state, deadline)) return false;
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return true;
}

// gRPC keeps the reason of the last failed connection attempt for the calls it
// fails; a fail-fast call on a failed channel returns it at once.
absl::Status WhyUnreachable(const std::shared_ptr<grpc::Channel>& channel,
                            std::chrono::milliseconds timeout) {
  if (channel->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
    return absl::DeadlineExceededError("no connection within " + std::to_string(timeout.count()) +
                                       " ms");
  }
  auto stub = crunch::v1::Crunch::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(Clock::now() + std::chrono::milliseconds(500));
  crunch::v1::DaemonStatus reply;
  const grpc::Status s = stub->Status(&context, crunch::v1::StatusRequest(), &reply);
  if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE) return absl::OkStatus();
  return absl::UnavailableError(s.error_message());
}

}  // namespace

absl::StatusOr<Connection> Connection::Open(const std::string& address,
                                            const SecurityOptions& options) {
  absl::StatusOr<TargetList> targets = ParseTargetList(address);
  if (!targets.ok()) return targets.status();
  absl::StatusOr<ChannelSecurity> security = LoadSecurity(options);
  if (!security.ok()) return security.status();
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (const std::string& target : targets->targets) {
    channels.push_back(MakeChannel(target, *security));
  }
  // Successive crunchctl runs should not all start with the first daemon.
  const size_t first = channels.size() == 1 ? 0 : std::random_device()() % channels.size();
  return Connection(address, targets->targets, std::move(channels), first);
}

std::string Connection::TargetOf(const std::shared_ptr<grpc::Channel>& channel) const {
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (channels_[i] == channel) return targets_[i];
  }
  return "";
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connection::Connect(
    std::chrono::milliseconds timeout) {
  absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> channels = ConnectMany(1, timeout);
  if (!channels.ok()) return channels.status();
  return channels->front();
}

absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> Connection::ConnectMany(
    size_t n, std::chrono::milliseconds timeout) {
  std::vector<std::shared_ptr<grpc::Channel>> connected;
  absl::Status last_error;
  // Each channel gets the whole timeout: one dead daemon must not use up the others' time.
  for (size_t tried = 0; tried < channels_.size() && connected.size() < n; ++tried) {
    std::shared_ptr<grpc::Channel> channel = channels_[next_];
    next_ = (next_ + 1) % channels_.size();
    if (WaitReady(*channel, Clock::now() + timeout)) {
      connected.push_back(channel);
      continue;
    }
    absl::Status why = WhyUnreachable(channel, timeout);
    if (why.ok()) {  // Connected after all.
      connected.push_back(channel);
    } else {
      last_error = why;
    }
  }
  if (connected.empty()) return last_error;
  // Fewer daemons than streams wanted: reuse the connected ones in turn.
  for (size_t i = 0; connected.size() < n; ++i) connected.push_back(connected[i]);
  return connected;
}

bool IsConnectionLost(const grpc::Status& status, grpc::Channel& channel) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         channel.GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY;
}

}  // namespace crunch::cli
