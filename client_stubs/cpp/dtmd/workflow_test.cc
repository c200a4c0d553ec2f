#include "dtmd/workflow.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "dtmd/fake_dtm_test_util.h"

namespace dtmd::client {
namespace {

using nlohmann::json;
using testing::DtmCall;

constexpr char kResumeUrl[] = "app:36792/workflow.Workflow/Execute";

std::map<std::string, std::string> DataOf(const DtmCall& call) {
  return {call.branch.data().begin(), call.branch.data().end()};
}

class WorkflowTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dtm_server_.ok()); }

  void AddProgress(const std::string& branch_id, const std::string& status,
                   const std::string& data) {
    dtmgimp::DtmProgress* progress = progresses_.add_progresses();
    progress->set_branchid(branch_id);
    progress->set_op("action");
    progress->set_status(status);
    progress->set_bindata(data);
    dtm_.SetProgresses(progresses_);
  }

  // Two steps; counts the steps that really ran. The second step's outcome is
  // `second`; the result joins both steps' results.
  WorkflowClient::Handler TwoSteps(absl::StatusOr<std::string> second) {
    return [this, second](Workflow& wf) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> first = wf.Do([&] {
        ++steps_run_;
        return absl::StatusOr<std::string>("reserved:" + wf.input());
      });
      if (!first.ok()) return first.status();
      absl::StatusOr<std::string> charged = wf.Do([&] {
        ++steps_run_;
        return second;
      });
      if (!charged.ok()) return charged.status();
      return *first + "+" + *charged;
    };
  }

  testing::FakeDtmServer dtm_server_;
  testing::FakeDtm& dtm_ = dtm_server_.dtm();
  WorkflowClient client_{dtm_server_.stub(), kResumeUrl};
  dtmgimp::DtmProgressesReply progresses_;
  int steps_run_ = 0;
};

TEST_F(WorkflowTest, FreshRunRecordsEachStepAndSubmitsTheResult) {
  absl::StatusOr<std::string> result =
      client_.Execute("order", "wf-1", std::string("in\0put", 6),
                      TwoSteps(std::string("paid")));
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string reserved = "reserved:" + std::string("in\0put", 6);
  EXPECT_EQ(*result, reserved + "+paid");
  EXPECT_EQ(steps_run_, 2);

  std::vector<DtmCall> calls = dtm_.calls();
  ASSERT_EQ(dtm_.methods(),
            (std::vector<std::string>{"PrepareWorkflow", "RegisterBranch",
                                      "RegisterBranch", "Submit"}));
  const dtmgimp::DtmRequest& prepare = calls[0].request;
  EXPECT_EQ(prepare.gid(), "wf-1");
  EXPECT_EQ(prepare.transtype(), "workflow");
  EXPECT_EQ(prepare.steps(), "null");
  EXPECT_EQ(prepare.queryprepared(), kResumeUrl);
  EXPECT_EQ(json::parse(prepare.customeddata()),
            (json{{"name", "order"},
                  {"data", absl::Base64Escape(std::string("in\0put", 6))}}));

  EXPECT_EQ(calls[1].branch.gid(), "wf-1");
  EXPECT_EQ(calls[1].branch.transtype(), "workflow");
  EXPECT_EQ(calls[1].branch.branchid(), "01");
  EXPECT_EQ(DataOf(calls[1]), (std::map<std::string, std::string>{
                                  {"op", "action"}, {"status", "succeed"}}));
  EXPECT_EQ(calls[1].branch.busipayload(), reserved);
  EXPECT_EQ(calls[2].branch.branchid(), "02");
  EXPECT_EQ(calls[2].branch.busipayload(), "paid");

  const dtmgimp::DtmRequest& submit = calls[3].request;
  EXPECT_EQ(submit.gid(), "wf-1");
  EXPECT_EQ(submit.transtype(), "workflow");
  EXPECT_EQ((std::map<std::string, std::string>(submit.reqextra().begin(),
                                                submit.reqextra().end())),
            (std::map<std::string, std::string>{
                {"status", "succeed"},
                {"rollback_reason", ""},
                {"result", absl::Base64Escape(reserved + "+paid")}}));
}

TEST_F(WorkflowTest, FailedStepIsRecordedAndEndsTheWorkflowFailed) {
  absl::StatusOr<std::string> result =
      client_.Execute("order", "wf-2", "in",
                      TwoSteps(absl::AbortedError("insufficient balance")));
  EXPECT_EQ(result.status(), absl::AbortedError("insufficient balance"));

  std::vector<DtmCall> calls = dtm_.calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(DataOf(calls[2]), (std::map<std::string, std::string>{
                                  {"op", "action"}, {"status", "failed"}}));
  EXPECT_EQ(calls[2].branch.busipayload(), "insufficient balance");
  const auto& extra = calls[3].request.reqextra();
  EXPECT_EQ(extra.at("status"), "failed");
  EXPECT_EQ(extra.at("rollback_reason"), "insufficient balance");
  EXPECT_EQ(extra.at("result"), "");
}

TEST_F(WorkflowTest, UnknownStepOutcomeLeavesTheWorkflowUnfinished) {
  absl::StatusOr<std::string> result = client_.Execute(
      "order", "wf-3", "in", TwoSteps(absl::UnavailableError("bank down")));
  EXPECT_EQ(result.status(), absl::UnavailableError("bank down"));
  // The first step is recorded, the second is not, and nothing is submitted.
  EXPECT_EQ(dtm_.methods(),
            (std::vector<std::string>{"PrepareWorkflow", "RegisterBranch"}));
}

TEST_F(WorkflowTest, ResumedRunReplaysRecordedStepsWithoutRunningThem) {
  AddProgress("01", "succeed", "reserved-earlier");
  absl::StatusOr<std::string> result =
      client_.Execute("order", "wf-4", "in", TwoSteps(std::string("paid")));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "reserved-earlier+paid");
  EXPECT_EQ(steps_run_, 1);  // Only the second step.
  std::vector<DtmCall> calls = dtm_.calls();
  ASSERT_EQ(dtm_.methods(),
            (std::vector<std::string>{"PrepareWorkflow", "RegisterBranch",
                                      "Submit"}));
  EXPECT_EQ(calls[1].branch.branchid(), "02");
}

TEST_F(WorkflowTest, RecordedFailureReplaysAsAborted) {
  AddProgress("01", "succeed", "r");
  AddProgress("02", "failed", "insufficient balance");
  absl::StatusOr<std::string> result =
      client_.Execute("order", "wf-5", "in", TwoSteps(std::string("paid")));
  EXPECT_EQ(result.status(), absl::AbortedError("insufficient balance"));
  EXPECT_EQ(steps_run_, 0);
  ASSERT_EQ(dtm_.methods(),
            (std::vector<std::string>{"PrepareWorkflow", "Submit"}));
  EXPECT_EQ(dtm_.calls()[1].request.reqextra().at("status"), "failed");
}

TEST_F(WorkflowTest, SucceededWorkflowReturnsItsStoredResult) {
  progresses_.mutable_transaction()->set_status("succeed");
  progresses_.mutable_transaction()->set_result(absl::Base64Escape("done"));
  dtm_.SetProgresses(progresses_);
  absl::StatusOr<std::string> result =
      client_.Execute("order", "wf-6", "in", TwoSteps(std::string("paid")));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, "done");
  EXPECT_EQ(steps_run_, 0);
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"PrepareWorkflow"}));
}

TEST_F(WorkflowTest, FailedWorkflowReturnsItsRollbackReason) {
  progresses_.mutable_transaction()->set_status("failed");
  progresses_.mutable_transaction()->set_rollbackreason("out of stock");
  dtm_.SetProgresses(progresses_);
  absl::StatusOr<std::string> result =
      client_.Execute("order", "wf-7", "in", TwoSteps(std::string("paid")));
  EXPECT_EQ(result.status(), absl::AbortedError("out of stock"));
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"PrepareWorkflow"}));
}

TEST_F(WorkflowTest, ServiceResumesTheRegisteredWorkflowFromMetadata) {
  WorkflowService service(&client_);
  std::string seen_input;
  service.Register("order", [&](Workflow& wf) -> absl::StatusOr<std::string> {
    seen_input = wf.input();
    EXPECT_EQ(wf.gid(), "wf-8");
    EXPECT_EQ(wf.name(), "order");
    return std::string("ok");
  });
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = workflow::Workflow::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  auto resume = [&](const std::string& name) {
    grpc::ClientContext context;
    context.AddMetadata("dtm-gid", "wf-8");
    context.AddMetadata("dtm-op", name);
    workflow::WorkflowData data;
    data.set_data("the input");
    google::protobuf::Empty reply;
    return stub->Execute(&context, data, &reply);
  };
  EXPECT_TRUE(resume("order").ok());
  EXPECT_EQ(seen_input, "the input");
  EXPECT_EQ(dtm_.methods(),
            (std::vector<std::string>{"PrepareWorkflow", "Submit"}));
  EXPECT_EQ(resume("refund").error_code(), grpc::StatusCode::NOT_FOUND);
  server->Shutdown();
}

}  // namespace
}  // namespace dtmd::client
