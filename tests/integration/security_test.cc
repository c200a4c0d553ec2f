// dtmd's transport security and authentication against real processes: TLS
// on the gRPC server with and without client certificates, bearer tokens on
// the Dtm and Admin services (accepted, missing, wrong, reloaded on SIGHUP),
// health and reflection left open, and branch calls over TLS. Certificates
// are made at run time with the openssl command into a temporary directory.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dtmd/client.h"
#include "dtmd/msg.h"
#include "gmock/gmock.h"
#include "google/protobuf/empty.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/grpc_probes.h"

namespace dtmd::testing {
namespace {

namespace admin_v1 = ::dtmd::admin::v1;
using ::testing::Contains;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.flush()) << "cannot write " << path;
}

// Throwaway PEM files: a CA, a server certificate for 127.0.0.1 and
// localhost and a client certificate, both signed by the CA, and a client
// certificate signed by another CA.
struct Certs {
  std::string dir;
  std::string Path(const std::string& name) const {
    return absl::StrCat(dir, "/", name);
  }
  std::string Pem(const std::string& name) const {
    return ReadFile(Path(name));
  }
};

int Run(const std::string& command) {
  return system(absl::StrCat(command, " >/dev/null 2>&1").c_str());
}

// openssl commands making a key and a certificate `name`.pem signed by
// `ca` (self-signed when empty), with `san` as subjectAltName if not empty.
std::string MakeCertCommand(const std::string& dir, const std::string& name,
                            const std::string& ca, const std::string& san) {
  const std::string key = absl::StrCat(
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout '",
      dir, "/", name, ".key' -subj '/CN=dtmd-test-", name, "'");
  if (ca.empty()) {
    return absl::StrCat(key, " -x509 -days 2 -out '", dir, "/", name, ".pem'");
  }
  std::string ext = absl::StrCat(dir, "/", name, ".ext");
  return absl::StrCat("printf '", san.empty() ? "" : "subjectAltName=" + san,
                      "\\n' > '", ext, "' && ", key, " -out '", dir, "/", name,
                      ".csr' && openssl x509 -req -in '", dir, "/", name,
                      ".csr' -CA '", dir, "/", ca, ".pem' -CAkey '", dir, "/",
                      ca, ".key' -CAcreateserial -days 2 -extfile '", ext,
                      "' -out '", dir, "/", name, ".pem'");
}

const Certs& TestCerts() {
  static const Certs* certs = [] {
    auto* c = new Certs{MakeTempDir("certs")};
    EXPECT_EQ(Run("openssl version"), 0)
        << "the openssl command is needed (scripts/deps.sh installs it)";
    for (const std::string& command :
         {MakeCertCommand(c->dir, "ca", "", ""),
          MakeCertCommand(c->dir, "other-ca", "", ""),
          MakeCertCommand(c->dir, "server", "ca", "IP:127.0.0.1,DNS:localhost"),
          MakeCertCommand(c->dir, "client", "ca", ""),
          MakeCertCommand(c->dir, "stranger", "other-ca", "")}) {
      EXPECT_EQ(Run(command), 0) << command;
    }
    return c;
  }();
  return *certs;
}

std::shared_ptr<grpc::ChannelCredentials> TlsClient(
    const Certs& certs, const std::string& client_name = "") {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = certs.Pem("ca.pem");
  if (!client_name.empty()) {
    options.pem_cert_chain = certs.Pem(client_name + ".pem");
    options.pem_private_key = certs.Pem(client_name + ".key");
  }
  return grpc::SslCredentials(options);
}

std::vector<std::string> ServerTlsFlags(const Certs& certs) {
  return {"--tls_cert_file=" + certs.Path("server.pem"),
          "--tls_key_file=" + certs.Path("server.key")};
}

// NewGid over `channel`: the cheapest call that reaches the Dtm service.
grpc::Status NewGid(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = dtmgimp::Dtm::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  google::protobuf::Empty request;
  dtmgimp::DtmGidReply reply;
  grpc::Status status = stub->NewGid(&context, request, &reply);
  if (status.ok() && reply.gid().empty()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "empty gid");
  }
  return status;
}

grpc::Status AdminVersion(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = admin_v1::Admin::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  admin_v1::VersionRequest request;
  admin_v1::VersionReply reply;
  return stub->Version(&context, request, &reply);
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = &TestCerts();
    ASSERT_FALSE(HasFailure()) << "no certificates";
  }

  const Certs* certs_ = nullptr;
};

TEST_F(SecurityTest, TlsServerWithoutClientCertificates) {
  DtmdProcess dtmd(MakeTempDir("tls"), ServerTlsFlags(*certs_));
  dtmd.set_client_options({TlsClient(*certs_), ""});
  ASSERT_TRUE(dtmd.Start().ok());
  const std::string address = dtmd.Address();

  EXPECT_TRUE(NewGid(MakeChannel(address, {TlsClient(*certs_), ""})).ok());
  EXPECT_TRUE(AdminVersion(dtmd.channel()).ok());
  // Health over TLS too.
  auto health = CheckHealth(dtmd.channel());
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);

  // A plaintext client does not get through, nor one that does not trust
  // the server's CA.
  EXPECT_FALSE(NewGid(MakeChannel(address, {})).ok());
  grpc::SslCredentialsOptions other_roots;
  other_roots.pem_root_certs = certs_->Pem("other-ca.pem");
  EXPECT_FALSE(
      NewGid(MakeChannel(address, {grpc::SslCredentials(other_roots), ""}))
          .ok());
  EXPECT_EQ(dtmd.Stop(), 0);
}

TEST_F(SecurityTest, TlsServerRequiringClientCertificates) {
  std::vector<std::string> flags = ServerTlsFlags(*certs_);
  flags.push_back("--tls_client_ca_file=" + certs_->Path("ca.pem"));
  DtmdProcess dtmd(MakeTempDir("mtls"), flags);
  dtmd.set_client_options({TlsClient(*certs_, "client"), ""});
  ASSERT_TRUE(dtmd.Start().ok());
  const std::string address = dtmd.Address();

  EXPECT_TRUE(
      NewGid(MakeChannel(address, {TlsClient(*certs_, "client"), ""})).ok());
  // No client certificate, or one from another CA: refused in the
  // handshake.
  EXPECT_FALSE(NewGid(MakeChannel(address, {TlsClient(*certs_), ""})).ok());
  EXPECT_FALSE(
      NewGid(MakeChannel(address, {TlsClient(*certs_, "stranger"), ""})).ok());
  EXPECT_FALSE(NewGid(MakeChannel(address, {})).ok());
  EXPECT_EQ(dtmd.Stop(), 0);
}

TEST_F(SecurityTest, PlaintextHealthPortServesOnlyHealthAndReflection) {
  std::vector<std::string> flags = ServerTlsFlags(*certs_);
  flags.push_back("--health_port=0");
  DtmdProcess dtmd(MakeTempDir("health-port"), flags);
  dtmd.set_client_options({TlsClient(*certs_), ""});
  ASSERT_TRUE(dtmd.Start().ok());
  ASSERT_GT(dtmd.health_port(), 0);
  auto plain = MakeChannel(absl::StrCat("127.0.0.1:", dtmd.health_port()), {});
  auto health = CheckHealth(plain);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
  auto services = ListServicesByReflection(plain);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("dtmgimp.Dtm"));
  grpc::Status dtm = NewGid(plain);
  EXPECT_EQ(dtm.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(dtm.error_message(), HasSubstr("health checks only"));
  EXPECT_EQ(AdminVersion(plain).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The TLS port serves everything.
  EXPECT_TRUE(NewGid(dtmd.channel()).ok());
  EXPECT_TRUE(AdminVersion(dtmd.channel()).ok());
  EXPECT_EQ(dtmd.Stop(), 0);
}

TEST_F(SecurityTest, StartUpFailsOnUnreadableSecurityFiles) {
  const std::string dir = MakeTempDir("badfiles");
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{
           {"--auth_token_file=" + dir + "/no-such-tokens"},
           {"--tls_cert_file=" + dir + "/no.pem",
            "--tls_key_file=" + dir + "/no.key"}}) {
    const std::string log = dir + "/dtmd.log";
    unlink(log.c_str());
    DtmdProcess dtmd(dir + "/data", flags);
    dtmd.set_stderr_file(log);
    EXPECT_FALSE(dtmd.Start().ok()) << flags[0];
    EXPECT_EQ(dtmd.exit_code(), 1) << flags[0];
    const std::string flag = flags[0].substr(0, flags[0].find('='));
    EXPECT_THAT(ReadFile(log), HasSubstr(flag + ": cannot read"));
  }
}

TEST_F(SecurityTest, WithoutTokensDtmdRunsOpenAndSaysSo) {
  const std::string dir = MakeTempDir("open");
  DtmdProcess dtmd(dir + "/data", {});
  dtmd.set_stderr_file(dir + "/dtmd.log");
  ASSERT_TRUE(dtmd.Start().ok());
  EXPECT_TRUE(NewGid(dtmd.channel()).ok());
  EXPECT_EQ(dtmd.Stop(), 0);
  EXPECT_THAT(ReadFile(dir + "/dtmd.log"),
              HasSubstr("no --auth_token_file: the Dtm and Admin services "
                        "accept every caller"));
}

class TokenTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    dir_ = MakeTempDir("tokens");
    tokens_ = dir_ + "/tokens";
    WriteFile(tokens_, "# operators\nalpha-token-1\n\n  beta-token-2  \n");
    log_ = dir_ + "/dtmd.log";
    dtmd_ = std::make_unique<DtmdProcess>(
        dir_ + "/data",
        std::vector<std::string>{"--auth_token_file=" + tokens_});
    dtmd_->set_stderr_file(log_);
    dtmd_->set_client_options({nullptr, "alpha-token-1"});
    ASSERT_TRUE(dtmd_->Start().ok());
  }

  std::shared_ptr<grpc::Channel> WithToken(const std::string& token) {
    return MakeChannel(dtmd_->Address(), {nullptr, token});
  }
  // A channel sending `value` as the authorization metadata verbatim.
  grpc::Status NewGidWithHeader(const std::string& value) {
    auto stub = dtmgimp::Dtm::NewStub(MakeChannel(dtmd_->Address(), {}));
    grpc::ClientContext context;
    context.AddMetadata("authorization", value);
    google::protobuf::Empty request;
    dtmgimp::DtmGidReply reply;
    return stub->NewGid(&context, request, &reply);
  }

  // Waits until `line` appears in dtmd's log.
  bool WaitForLog(const std::string& line) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      if (ReadFile(log_).find(line) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::string dir_;
  std::string tokens_;
  std::string log_;
  std::unique_ptr<DtmdProcess> dtmd_;
};

TEST_F(TokenTest, AcceptsListedTokensAndRejectsOthers) {
  EXPECT_TRUE(NewGid(WithToken("alpha-token-1")).ok());
  EXPECT_TRUE(NewGid(WithToken("beta-token-2")).ok());
  EXPECT_TRUE(AdminVersion(WithToken("beta-token-2")).ok());
  EXPECT_TRUE(NewGidWithHeader("bearer alpha-token-1").ok());

  for (const std::shared_ptr<grpc::Channel>& channel :
       {MakeChannel(dtmd_->Address(), {}), WithToken("alpha-token"),
        WithToken("alpha-token-1x"), WithToken("# operators")}) {
    EXPECT_EQ(NewGid(channel).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(AdminVersion(channel).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(NewGidWithHeader("Basic alpha-token-1").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(NewGidWithHeader("alpha-token-1").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status missing = NewGid(MakeChannel(dtmd_->Address(), {}));
  EXPECT_THAT(missing.error_message(), HasSubstr("authorization: Bearer"));
  EXPECT_THAT(ReadFile(log_), HasSubstr("bearer tokens required"));
}

TEST_F(TokenTest, UnauthenticatedCallsChangeNothing) {
  const std::string gid = "unauthenticated-saga";
  for (const std::string& token : {std::string(), std::string("wrong")}) {
    auto stub = dtmgimp::Dtm::NewStub(WithToken(token));
    grpc::Status submit =
        dtmd::client::Saga(stub.get(), gid).Add("", "", "").Submit();
    EXPECT_EQ(submit.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // The authorized channel does not find it.
  auto absent = dtmd_->GetTransaction(gid);
  EXPECT_TRUE(absl::IsNotFound(absent.status())) << absent.status();

  // A prepared msg: ForceStop without a token leaves it prepared.
  const std::string msg_gid = "prepared-msg";
  ASSERT_TRUE(dtmd::client::Msg(dtmd_->dtm(), msg_gid)
                  .Add("127.0.0.1:1/busi.Busi/Never", "")
                  .Prepare("127.0.0.1:1/busi.Busi/QueryPrepared")
                  .ok());
  {
    auto admin = admin_v1::Admin::NewStub(WithToken("wrong"));
    grpc::ClientContext context;
    admin_v1::ForceStopRequest request;
    request.set_gid(msg_gid);
    request.set_reason("not allowed");
    admin_v1::ForceStopReply reply;
    EXPECT_EQ(admin->ForceStop(&context, request, &reply).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    auto dtm = dtmgimp::Dtm::NewStub(WithToken(""));
    EXPECT_EQ(dtmd::client::Msg(dtm.get(), msg_gid)
                  .Add("127.0.0.1:1/busi.Busi/Never", "")
                  .Submit()
                  .code(),
              absl::StatusCode::kUnauthenticated);
  }
  auto prepared = dtmd_->GetTransaction(msg_gid);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->transaction().status(), "prepared");
}

TEST_F(TokenTest, HealthAndReflectionStayOpen) {
  auto open = MakeChannel(dtmd_->Address(), {});
  auto health = CheckHealth(open);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
  auto services = ListServicesByReflection(open);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("dtmgimp.Dtm"));
  EXPECT_THAT(*services, Contains("dtmd.admin.v1.Admin"));
}

TEST_F(TokenTest, SighupReloadsTheTokenFile) {
  WriteFile(tokens_, "gamma-token-3\n");
  ASSERT_EQ(kill(dtmd_->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog("SIGHUP: loaded 1 tokens"));
  EXPECT_TRUE(NewGid(WithToken("gamma-token-3")).ok());
  EXPECT_EQ(NewGid(WithToken("alpha-token-1")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(NewGid(WithToken("beta-token-2")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // A file without tokens, then no file: the tokens loaded before stay.
  WriteFile(tokens_, "# nobody\n\n");
  ASSERT_EQ(kill(dtmd_->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog("no token in the file"));
  EXPECT_TRUE(NewGid(WithToken("gamma-token-3")).ok());
  ASSERT_EQ(unlink(tokens_.c_str()), 0);
  ASSERT_EQ(kill(dtmd_->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog("auth_token_file: cannot read"));
  EXPECT_TRUE(NewGid(WithToken("gamma-token-3")).ok());
  EXPECT_EQ(NewGid(WithToken("alpha-token-1")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Still serving after the signals; SIGTERM still stops it cleanly.
  EXPECT_EQ(dtmd_->Stop(), 0);
}

class BranchTlsTest : public SecurityTest {
 protected:
  // A TLS branch server with the test server certificate; with
  // `require_client_cert`, clients must present one signed by the test CA.
  void StartTlsBranches(bool require_client_cert) {
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back(
        {certs_->Pem("server.key"), certs_->Pem("server.pem")});
    if (require_client_cert) {
      options.pem_root_certs = certs_->Pem("ca.pem");
      options.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    branches_.set_credentials(grpc::SslServerCredentials(options));
    ASSERT_TRUE(branches_.Start().ok());
  }

  // Runs a one-step saga against the branch server and waits for its end.
  absl::StatusOr<admin_v1::GetTransactionReply> RunSaga(
      DtmdProcess& dtmd, const std::string& gid) {
    grpc::Status submit =
        dtmd::client::Saga(dtmd.dtm(), gid)
            .Add(branches_.Url("/busi.Busi/Pay"),
                 branches_.Url("/busi.Busi/Refund"), "payload")
            .Submit();
    if (!submit.ok()) return absl::InternalError(submit.error_message());
    return dtmd.WaitForStatus(gid, {"succeed"}, absl::Seconds(20));
  }

  ScriptedBranchServer branches_;
};

TEST_F(BranchTlsTest, CallsListedTargetOverTls) {
  StartTlsBranches(false);
  DtmdProcess dtmd(MakeTempDir("branch-tls"),
                   {"--branch_tls=" + branches_.Address(),
                    "--branch_tls_ca_file=" + certs_->Path("ca.pem")});
  ASSERT_TRUE(dtmd.Start().ok());
  auto done = RunSaga(dtmd, "tls-branch-saga");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(branches_.CountCalls("tls-branch-saga", "action"), 1);
}

TEST_F(BranchTlsTest, CallsEveryTargetOverTlsWithAClientCertificate) {
  StartTlsBranches(true);
  DtmdProcess dtmd(
      MakeTempDir("branch-mtls"),
      {"--branch_tls=*", "--branch_tls_ca_file=" + certs_->Path("ca.pem"),
       "--branch_tls_cert_file=" + certs_->Path("client.pem"),
       "--branch_tls_key_file=" + certs_->Path("client.key")});
  ASSERT_TRUE(dtmd.Start().ok());
  auto done = RunSaga(dtmd, "mtls-branch-saga");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(branches_.CountCalls("mtls-branch-saga", "action"), 1);
}

TEST_F(BranchTlsTest, PlaintextCallsDoNotReachATlsBranch) {
  StartTlsBranches(false);
  // Branch TLS for another target only: this one is called in plaintext,
  // which the TLS server refuses, so the action is retried and never
  // arrives.
  DtmdProcess dtmd(MakeTempDir("branch-plain"),
                   {"--branch_tls=127.0.0.1:1", "--retry_interval=1",
                    "--branch_tls_ca_file=" + certs_->Path("ca.pem")});
  ASSERT_TRUE(dtmd.Start().ok());
  const std::string gid = "plaintext-to-tls";
  ASSERT_TRUE(dtmd::client::Saga(dtmd.dtm(), gid)
                  .Add(branches_.Url("/busi.Busi/Pay"),
                       branches_.Url("/busi.Busi/Refund"), "")
                  .Submit()
                  .ok());
  auto failed_call = dtmd.WaitFor(
      gid,
      [](const admin_v1::GetTransactionReply& reply) {
        for (const admin_v1::Branch& b : reply.branches()) {
          if (b.op() == "action" && !b.last_error().empty()) return true;
        }
        return false;
      },
      "a failed action call", absl::Seconds(20));
  ASSERT_TRUE(failed_call.ok()) << failed_call.status();
  EXPECT_EQ(failed_call->transaction().status(), "submitted");
  EXPECT_EQ(branches_.Calls().size(), 0u);
}

}  // namespace
}  // namespace dtmd::testing
