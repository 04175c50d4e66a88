// Who may call crunchd (issue 6, "Security"), against the real daemon and real
// clients: the unix socket's mode and its peer allowlist (SO_PEERCRED; the
// other peers are crunchctl run as another uid through setpriv), TLS on TCP
// with and without client certificates (certificates made at test time with
// the openssl CLI), the bearer token on both transports, and the
// configuration mistakes --check-config must refuse.
//
// The tests run as root (CI does): only root can run a client as another uid.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "crunch/v1/crunch.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/daemon_process.h"

extern char** environ;

namespace crunch {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

// A directory for certificates, tokens and outputs, removed at the end. Mode
// 0755: clients running as another uid must reach the files in it.
class Scratch {
 public:
  Scratch() {
    char tmpl[] = "/tmp/crunchd-security-XXXXXX";
    dir_ = ::mkdtemp(tmpl) ? tmpl : "";
    ::chmod(dir_.c_str(), 0755);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] an absolute path) with `env` added to ours.
Outcome Run(const Scratch& scratch, std::vector<std::string> argv,
            const std::vector<std::string>& env = {}) {
  static int counter = 0;
  const std::string out_path = scratch.Path("out." + std::to_string(++counter));
  const std::string err_path = out_path + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings(env);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  Outcome o;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    o.err = "posix_spawn failed";
    return o;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = ReadAll(out_path);
  o.err = ReadAll(err_path);
  return o;
}

// crunchctl `args`, run as `uid` with primary gid 0 (the socket's group, so it
// can open the 0660 socket) and the supplementary `groups` ("" for none).
Outcome CrunchctlAs(const Scratch& scratch, uid_t uid, const std::string& groups,
                    const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid),
                                   "--regid=0"};
  argv.push_back(groups.empty() ? "--clear-groups" : "--groups=" + groups);
  argv.push_back(CRUNCHCTL_PATH);
  for (const std::string& a : args) argv.push_back(a);
  return Run(scratch, argv);
}

Outcome Crunchctl(const Scratch& scratch, const std::vector<std::string>& args,
                  const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {CRUNCHCTL_PATH};
  for (const std::string& a : args) argv.push_back(a);
  return Run(scratch, argv, env);
}

// A CA, a server certificate it signed (localhost, 127.0.0.1) and a client
// certificate it signed, as PEM files in `scratch`.
void MakeCertificates(const Scratch& scratch) {
  WriteFile(scratch.Path("server.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n", 0644);
  WriteFile(scratch.Path("client.ext"), "basicConstraints=CA:FALSE\n", 0644);
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string script =
      "(cd " + scratch.Path("") + " && " + "openssl req -x509 " + ec +
      " -keyout ca.key -out ca.pem -days 2 -subj /CN=crunch-test-ca" + " && openssl req " + ec +
      " -keyout server.key -out server.csr -subj /CN=localhost" +
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial" +
      " -out server.pem -days 2 -extfile server.ext" + " && openssl req " + ec +
      " -keyout client.key -out client.csr -subj /CN=crunch-test-client" +
      " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial" +
      " -out client.pem -days 2 -extfile client.ext" + " && chmod 0644 *.key)";
  const std::string log = scratch.Path("openssl.log");
  ASSERT_EQ(std::system((script + " >" + log + " 2>&1").c_str()), 0) << ReadAll(log);
}

std::shared_ptr<grpc::Channel> TlsChannel(const Scratch& scratch, const std::string& target,
                                          bool client_certificate, bool trust_ca = true) {
  grpc::SslCredentialsOptions options;
  if (trust_ca) options.pem_root_certs = ReadAll(scratch.Path("ca.pem"));
  if (client_certificate) {
    options.pem_cert_chain = ReadAll(scratch.Path("client.pem"));
    options.pem_private_key = ReadAll(scratch.Path("client.key"));
  }
  return grpc::CreateChannel(target, grpc::SslCredentials(options));
}

// Status over `channel`, with `token` as bearer token unless "".
grpc::Status CallStatus(const std::shared_ptr<grpc::Channel>& channel,
                        const std::string& token = "") {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::DaemonStatus reply;
  return v1::Crunch::NewStub(channel)->Status(&context, v1::StatusRequest(), &reply);
}

grpc::Status CallHealth(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckResponse reply;
  return grpc::health::v1::Health::NewStub(channel)->Check(
      &context, grpc::health::v1::HealthCheckRequest(), &reply);
}

// One noop over RunStream; the stream's final status.
grpc::Status CallRunStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                           v1::TaskResult* result) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  auto stream = v1::Crunch::NewStub(channel)->RunStream(&context);
  v1::TaskRequest request;
  request.set_kind("noop");
  request.set_tag(7);
  stream->Write(request);
  stream->WritesDone();
  while (stream->Read(result)) {
  }
  return stream->Finish();
}

std::string TcpAddress(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// --- The unix socket ----------------------------------------------------------

TEST(UnixSocket, IsMode0660) {
  auto d = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(d.ok()) << d.status();
  struct stat st;
  ASSERT_EQ(::stat((*d)->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST(UnixSocket, WithoutAllowlistAnyoneWhoCanOpenTheSocketMayCall) {
  Scratch scratch;
  auto d = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(d.ok()) << d.status();
  ::chmod((*d)->dir().c_str(), 0755);
  const Outcome o = CrunchctlAs(scratch, 65534, "", {"--address", (*d)->address(), "status"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

TEST(UnixSocket, PeersOutsideTheAllowlistGetPermissionDenied) {
  Scratch scratch;
  auto d = DaemonProcess::Start({"--workers", "1"},
                                "[server]\nallow_uids = [4242]\nallow_gids = [4243]\n");
  ASSERT_TRUE(d.ok()) << d.status();
  ::chmod((*d)->dir().c_str(), 0755);
  const std::vector<std::string> status = {"--address", (*d)->address(), "status"};

  // Neither uid 65534 nor gid 0 is listed: every call is refused, unary or stream.
  Outcome o = CrunchctlAs(scratch, 65534, "", status);
  EXPECT_EQ(o.exit_code, 10) << o.err;
  EXPECT_THAT(o.err, HasSubstr("PERMISSION_DENIED: uid 65534 (gid 0) may not call this crunchd"));
  o = CrunchctlAs(scratch, 65534, "4244", {"--address", (*d)->address(), "run", "noop"});
  EXPECT_EQ(o.exit_code, 10) << o.err;
  o = CrunchctlAs(scratch, 65534, "",
                  {"--address", (*d)->address(), "run", "noop", "--repeat", "5"});
  EXPECT_NE(o.exit_code, 0);
  EXPECT_THAT(o.out + o.err, HasSubstr("PERMISSION_DENIED")) << o.out << o.err;
  EXPECT_THAT((*d)->Log(), HasSubstr("refused a unix socket peer: uid 65534 gid 0"));

  // A listed uid, a listed supplementary group, and root pass.
  o = CrunchctlAs(scratch, 4242, "", status);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  o = CrunchctlAs(scratch, 65534, "4244,4243", {"--address", (*d)->address(), "run", "noop"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto channel = grpc::CreateChannel((*d)->address(), grpc::InsecureChannelCredentials());
  EXPECT_TRUE(CallStatus(channel).ok());
  EXPECT_TRUE(CallHealth(channel).ok());
}

// --- TLS on TCP ---------------------------------------------------------------

std::string TlsConfig(const Scratch& scratch, bool client_ca) {
  std::string toml = "[server]\ntls_cert_file = \"" + scratch.Path("server.pem") +
                     "\"\ntls_key_file = \"" + scratch.Path("server.key") + "\"\n";
  if (client_ca) toml += "tls_client_ca_file = \"" + scratch.Path("ca.pem") + "\"\n";
  return toml;
}

TEST(Tls, TcpServesTlsClientsOnly) {
  Scratch scratch;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(scratch));
  const std::string tcp = TcpAddress(testing::FreeLoopbackPort());
  auto d = DaemonProcess::Start({"--listen", tcp, "--workers", "1"}, TlsConfig(scratch, false));
  ASSERT_TRUE(d.ok()) << d.status();

  const grpc::Status plaintext =
      CallStatus(grpc::CreateChannel(tcp, grpc::InsecureChannelCredentials()));
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
  // The certificate is not one the system trusts.
  const grpc::Status untrusted = CallStatus(TlsChannel(scratch, tcp, false, /*trust_ca=*/false));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE) << untrusted.error_message();
  const grpc::Status tls = CallStatus(TlsChannel(scratch, tcp, false));
  EXPECT_TRUE(tls.ok()) << tls.error_message();

  Outcome o = Crunchctl(scratch, {"--address", tcp, "--tls-ca", scratch.Path("ca.pem"), "status"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  o = Crunchctl(scratch, {"--address", tcp, "--deadline", "2000", "status"});
  EXPECT_EQ(o.exit_code, 3) << o.err;  // Plaintext to a TLS port: cannot reach it.
}

TEST(Tls, ASecondDaemonOnTheSamePortIsRefused) {
  Scratch scratch;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(scratch));
  const std::string tcp = TcpAddress(testing::FreeLoopbackPort());
  auto d = DaemonProcess::Start({"--listen", tcp, "--workers", "1"}, TlsConfig(scratch, false));
  ASSERT_TRUE(d.ok()) << d.status();

  // With gRPC's default SO_REUSEPORT the second one would start and take a
  // share of the first one's connections; `timeout` turns that into a failure.
  WriteFile(scratch.Path("second.toml"), TlsConfig(scratch, false), 0644);
  Outcome o = crunch::Run(scratch, {"/usr/bin/timeout", "20", CRUNCHD_PATH, "--config",
                                    scratch.Path("second.toml"), "--listen", tcp, "--listen",
                                    "unix:" + scratch.Path("second.sock"), "--workers", "1"});
  EXPECT_NE(o.exit_code, 124) << "a second crunchd ran on the same port";
  EXPECT_NE(o.exit_code, 0);
  EXPECT_THAT(o.err, HasSubstr("cannot listen on"));
  const grpc::Status first = CallStatus(TlsChannel(scratch, tcp, false));
  EXPECT_TRUE(first.ok()) << first.error_message();
}

TEST(Tls, ClientCaRequiresAClientCertificate) {
  Scratch scratch;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(scratch));
  const std::string tcp = TcpAddress(testing::FreeLoopbackPort());
  auto d = DaemonProcess::Start({"--listen", tcp, "--workers", "1"}, TlsConfig(scratch, true));
  ASSERT_TRUE(d.ok()) << d.status();

  const grpc::Status anonymous = CallStatus(TlsChannel(scratch, tcp, false));
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAVAILABLE) << anonymous.error_message();
  const grpc::Status with_cert = CallStatus(TlsChannel(scratch, tcp, true));
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();

  const std::vector<std::string> tls = {"--address", tcp, "--tls-ca", scratch.Path("ca.pem")};
  std::vector<std::string> args = tls;
  args.push_back("status");
  Outcome o = Crunchctl(scratch, args);
  EXPECT_EQ(o.exit_code, 3) << o.err;
  args = tls;
  for (const char* a : {"--tls-cert", "", "--tls-key", "", "status"}) args.push_back(a);
  args[5] = scratch.Path("client.pem");
  args[7] = scratch.Path("client.key");
  o = Crunchctl(scratch, args);
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

// --- The bearer token ---------------------------------------------------------

TEST(Token, EveryCallOnEveryTransportNeedsIt) {
  Scratch scratch;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(scratch));
  WriteFile(scratch.Path("token"), std::string(kToken) + "\n", 0600);
  const std::string tcp = TcpAddress(testing::FreeLoopbackPort());
  auto d = DaemonProcess::Start(
      {"--listen", tcp, "--workers", "1"},
      TlsConfig(scratch, false) + "token_file = \"" + scratch.Path("token") + "\"\n", "", kToken);
  ASSERT_TRUE(d.ok()) << d.status();

  struct Transport {
    const char* name;
    std::shared_ptr<grpc::Channel> channel;
  };
  for (const Transport& t :
       {Transport{"unix", grpc::CreateChannel((*d)->address(), grpc::InsecureChannelCredentials())},
        Transport{"tls", TlsChannel(scratch, tcp, false)}}) {
    SCOPED_TRACE(t.name);
    grpc::Status s = CallStatus(t.channel);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(s.error_message(), HasSubstr("requires a bearer token"));
    s = CallStatus(t.channel, "0123456789abcdef0123456789abcdeX");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(s.error_message(), HasSubstr("bearer token is wrong"));
    s = CallStatus(t.channel, std::string(kToken) + "0");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(CallStatus(t.channel, kToken).ok());
    // Streams too.
    v1::TaskResult result;
    s = CallRunStream(t.channel, "", &result);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    result.Clear();
    s = CallRunStream(t.channel, kToken, &result);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(result.tag(), 7u);
    // Probes need no token.
    EXPECT_TRUE(CallHealth(t.channel).ok());
  }

  Outcome o = Crunchctl(scratch, {"--address", (*d)->address(), "status"});
  EXPECT_EQ(o.exit_code, 12) << o.err;
  EXPECT_THAT(o.err, HasSubstr("UNAUTHENTICATED"));
  o = Crunchctl(scratch,
                {"--address", (*d)->address(), "--token-file", scratch.Path("token"), "status"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  o = Crunchctl(scratch, {"--address", (*d)->address(), "run", "noop", "--repeat", "20"},
                {"CRUNCH_TOKEN_FILE=" + scratch.Path("token")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  o = Crunchctl(scratch, {"--address", tcp, "--tls-ca", scratch.Path("ca.pem"), "--token-file",
                          scratch.Path("token"), "run", "noop"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

// --- Configuration mistakes ------------------------------------------------------

Outcome CheckConfig(const Scratch& scratch, const std::string& toml,
                    const std::vector<std::string>& flags = {}) {
  WriteFile(scratch.Path("crunchd.toml"), toml, 0644);
  std::vector<std::string> argv = {CRUNCHD_PATH, "--check-config", "--config",
                                   scratch.Path("crunchd.toml")};
  for (const std::string& f : flags) argv.push_back(f);
  return Run(scratch, argv);
}

TEST(SecurityConfig, MistakesAreRefusedWithTheReason) {
  Scratch scratch;
  ASSERT_NO_FATAL_FAILURE(MakeCertificates(scratch));
  const std::string tls = TlsConfig(scratch, false);

  Outcome o = CheckConfig(scratch, "", {"--listen", "127.0.0.1:7000"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("listen address '127.0.0.1:7000' is TCP, and crunchd serves TCP "
                               "only over TLS: set [server] tls_cert_file and tls_key_file"));
  o = CheckConfig(scratch, "[server]\nlisten = [\"[::1]:7000\"]\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("is TCP"));
  o = CheckConfig(scratch, tls, {"--listen", "127.0.0.1:7000"});
  EXPECT_EQ(o.exit_code, 0) << o.err;

  o = CheckConfig(scratch, "[server]\ntls_cert_file = \"" + scratch.Path("server.pem") + "\"\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("tls_cert_file is set but tls_key_file is not"));
  o = CheckConfig(scratch, "[server]\ntls_client_ca_file = \"" + scratch.Path("ca.pem") + "\"\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("tls_client_ca_file is set but tls_cert_file"));
  o = CheckConfig(scratch, "[server]\ntls_cert_file = \"" + scratch.Path("server.ext") +
                               "\"\ntls_key_file = \"" + scratch.Path("server.key") + "\"\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("is not a PEM file"));

  const std::string token_key = "[server]\ntoken_file = \"" + scratch.Path("token") + "\"\n";
  o = CheckConfig(scratch, token_key);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("cannot read [server] token_file '" + scratch.Path("token")));
  WriteFile(scratch.Path("token"), kToken, 0644);
  o = CheckConfig(scratch, token_key);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("has mode 0644: other users can read or write it"));
  WriteFile(scratch.Path("token"), "short\n", 0640);
  o = CheckConfig(scratch, token_key);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("must hold one token of 16..4096 visible ASCII characters"));
  WriteFile(scratch.Path("token"), kToken, 0640);
  o = CheckConfig(scratch, token_key);
  EXPECT_EQ(o.exit_code, 0) << o.err;

  o = CheckConfig(scratch, "[server]\nallow_uids = [\"alice\"]\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("[server] allow_uids must be a list of integers in "
                               "0..4294967294; item 0 is \"alice\" (a string)"));
}

}  // namespace
}  // namespace crunch
