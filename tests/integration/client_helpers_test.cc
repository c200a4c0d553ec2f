// The C++ client's TCC, msg and workflow helpers (client_stubs/cpp) against a
// real dtmd and the scripted branch server: what the unit tests check against
// a fake coordinator, here checked by dtmd's own answers.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dtmd/msg.h"
#include "dtmd/tcc.h"
#include "dtmd/workflow.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

client::TransOptions Waiting() {
  client::TransOptions options;
  options.wait_result = true;
  options.retry_interval = 1;  // Workflows are re-driven every interval.
  return options;
}

class ClientHelpersTest : public SagaFixture {
 protected:
  // The calls made for gid, as "method branch_id op".
  static std::vector<std::string> Calls(const std::string& gid) {
    std::vector<std::string> calls;
    for (const RecordedCall& call : branches_->CallsFor(gid)) {
      calls.push_back(
          absl::StrCat(call.method, " ", call.branch_id, " ", call.op));
    }
    return calls;
  }
};

TEST_F(ClientHelpersTest, TccConfirmsOnSubmitAndCancelsOnAbort) {
  const std::string ok_gid = NewTestGid();
  auto body = [](client::Tcc& tcc) {
    absl::Status status =
        tcc.CallBranch("a", Url("TryA"), Url("ConfirmA"), Url("CancelA"));
    if (!status.ok()) return status;
    return tcc.CallBranch("b", Url("TryB"), Url("ConfirmB"), Url("CancelB"));
  };
  ASSERT_TRUE(
      client::TccGlobalTransaction(dtmd_->dtm(), ok_gid, body, Waiting()).ok());
  ASSERT_TRUE(dtmd_->WaitForStatus(ok_gid, {"succeed"}, kWait).ok());
  EXPECT_EQ(Calls(ok_gid), (std::vector<std::string>{
                               "/busi.Busi/TryA 01 try",
                               "/busi.Busi/TryB 02 try",
                               "/busi.Busi/ConfirmB 02 confirm",
                               "/busi.Busi/ConfirmA 01 confirm",
                           }));

  const std::string failing_gid = NewTestGid();
  branches_->SetScript(Method("TryB"), failing_gid,
                       {{grpc::StatusCode::ABORTED, "no stock"}});
  EXPECT_EQ(
      client::TccGlobalTransaction(dtmd_->dtm(), failing_gid, body, Waiting()),
      absl::AbortedError("no stock"));
  ASSERT_TRUE(dtmd_->WaitForStatus(failing_gid, {"failed"}, kWait).ok());
  EXPECT_EQ(Calls(failing_gid), (std::vector<std::string>{
                                    "/busi.Busi/TryA 01 try",
                                    "/busi.Busi/TryB 02 try",
                                    "/busi.Busi/CancelB 02 cancel",
                                    "/busi.Busi/CancelA 01 cancel",
                                }));
}

TEST_F(ClientHelpersTest, MsgDoAndSubmitAsksQueryPreparedThenDelivers) {
  const std::string gid = NewTestGid();
  client::Msg msg(dtmd_->dtm(), gid, Waiting());
  msg.Add(Url("AddPoints"), "points");
  // The local transaction's outcome is unknown; QueryPrepared says it
  // committed (the branch server answers OK), so the msg is submitted.
  EXPECT_EQ(msg.DoAndSubmit(Url("QueryPrepared"),
                            [] { return absl::DeadlineExceededError("slow"); }),
            absl::DeadlineExceededError("slow"));
  ASSERT_TRUE(dtmd_->WaitForStatus(gid, {"succeed"}, kWait).ok());
  EXPECT_EQ(Calls(gid), (std::vector<std::string>{
                            "/busi.Busi/QueryPrepared 00 msg",
                            "/busi.Busi/AddPoints 01 action",
                        }));
}

TEST_F(ClientHelpersTest, MsgToATopicReachesItsSubscriber) {
  const std::string topic = "points-" + NewTestGid();
  ASSERT_TRUE(client::Subscribe(dtmd_->dtm(), topic, Url("Points"), "").ok());
  EXPECT_EQ(client::Subscribe(dtmd_->dtm(), topic, Url("Points"), "").code(),
            absl::StatusCode::kAlreadyExists);
  const std::string gid = NewTestGid();
  client::Msg msg(dtmd_->dtm(), gid, Waiting());
  ASSERT_TRUE(msg.Add("topic://" + topic, "p").Submit().ok());
  ASSERT_TRUE(dtmd_->WaitForStatus(gid, {"succeed"}, kWait).ok());
  ASSERT_EQ(branches_->CallsFor(gid).size(), 1u);
  EXPECT_EQ(branches_->CallsFor(gid)[0].method, "/busi.Busi/Points");
  ASSERT_TRUE(client::Unsubscribe(dtmd_->dtm(), topic, Url("Points")).ok());
  EXPECT_EQ(client::DeleteTopic(dtmd_->dtm(), topic).code(),
            absl::StatusCode::kNotFound);
}

// Workflows: a resume endpoint served in this process.
class WorkflowClientTest : public ClientHelpersTest {
 protected:
  void SetUp() override {
    // The resume URL names the port before the server listens on it: the
    // port is held by a socket bound with SO_REUSEPORT (as gRPC binds its
    // own), so nothing else can take it in between.
    const int holder = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(holder, 0);
    const int on = 1;
    ASSERT_EQ(setsockopt(holder, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)), 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(
        getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length), 0);
    const std::string target =
        absl::StrCat("127.0.0.1:", ntohs(address.sin_port));

    client_ = std::make_unique<client::WorkflowClient>(
        dtmd_->dtm(), target + "/workflow.Workflow/Execute", Waiting());
    service_ = std::make_unique<client::WorkflowService>(client_.get());
    service_->Register("order", Handler());
    grpc::ServerBuilder builder;
    builder.AddListeningPort(target, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    close(holder);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Step 1 reserves; step 2 charges, failing with charge_error_ the first
  // charge_failures_ times.
  client::WorkflowClient::Handler Handler() {
    return [this](client::Workflow& wf) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> reserved = wf.Do([&] {
        ++reserve_runs_;
        return absl::StatusOr<std::string>("r:" + wf.input());
      });
      if (!reserved.ok()) return reserved.status();
      absl::StatusOr<std::string> charged =
          wf.Do([&]() -> absl::StatusOr<std::string> {
            if (charge_failures_ > 0) {
              --charge_failures_;
              return charge_error_;
            }
            return std::string("c");
          });
      if (!charged.ok()) return charged.status();
      return *reserved + "+" + *charged;
    };
  }

  std::unique_ptr<client::WorkflowClient> service_client_;
  std::unique_ptr<client::WorkflowService> service_;
  std::unique_ptr<client::WorkflowClient> client_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> reserve_runs_{0};
  std::atomic<int> charge_failures_{0};
  absl::Status charge_error_;
};

TEST_F(WorkflowClientTest, SucceededWorkflowAnswersItsStoredResult) {
  const std::string gid = NewTestGid();
  absl::StatusOr<std::string> result =
      client_->Execute("order", gid, "in", Handler());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "r:in+c");
  // Again: dtmd answers the stored result; nothing runs.
  result = client_->Execute("order", gid, "in", Handler());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "r:in+c");
  EXPECT_EQ(reserve_runs_, 1);
}

TEST_F(WorkflowClientTest, FailedStepEndsItFailedForGood) {
  const std::string gid = NewTestGid();
  charge_failures_ = 1;
  charge_error_ = absl::AbortedError("insufficient balance");
  EXPECT_EQ(client_->Execute("order", gid, "in", Handler()).status(),
            absl::AbortedError("insufficient balance"));
  auto stored = dtmd_->WaitForStatus(gid, {"failed"}, kWait);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->transaction().rollback_reason(), "insufficient balance");
  EXPECT_EQ(client_->Execute("order", gid, "in", Handler()).status(),
            absl::AbortedError("insufficient balance"));
}

TEST_F(WorkflowClientTest, UnfinishedWorkflowIsResumedByDtmdAndReplayed) {
  const std::string gid = NewTestGid();
  charge_failures_ = 1;
  charge_error_ = absl::UnavailableError("bank down");
  EXPECT_EQ(client_->Execute("order", gid, "in", Handler()).status(),
            absl::UnavailableError("bank down"));
  // dtmd calls the resume URL; the service runs the handler again, which
  // replays the reservation and charges.
  ASSERT_TRUE(dtmd_->WaitForStatus(gid, {"succeed"}, kWait).ok())
      << dtmd_->GetTransaction(gid)->DebugString();
  EXPECT_EQ(reserve_runs_, 1);
  absl::StatusOr<std::string> result =
      client_->Execute("order", gid, "in", Handler());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "r:in+c");
}

}  // namespace
}  // namespace dtmd::testing
