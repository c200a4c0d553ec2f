// quickstart: two sagas, two TCC transactions and a msg against dtmd and
// busi_server (see shop.h for the business side).
//
// Sagas: each places an order in three steps, each with its compensation:
//   CreateOrder / CancelOrder, DeductStock / RestoreStock, Charge / Refund.
// The first costs 30, within the user's balance of 100: it succeeds. The
// second costs 1000: Charge answers ABORTED "insufficient balance", so dtmd
// cancels the order and restores the stock; Refund has nothing to undo (the
// charge never happened) and busi_server treats it as a null compensation.
// Both are submitted with WaitResult, so Submit returns the outcome: OK
// (succeed) or ABORTED with the rollback reason (failed).
//
// TCC: the client reserves stock (TryDeductStock) then freezes the money
// (TryCharge), each branch registered with dtmd before its Try. An order of
// 30 succeeds and dtmd confirms both (ConfirmCharge, ConfirmDeductStock); an
// order of 1000 fails at TryCharge, the client aborts, and dtmd cancels both
// (CancelCharge is a null compensation, CancelDeductStock gives the stock
// back).
//
// Msg: an order of 30 placed by busi_server's PlaceOrder (the local
// transaction, called directly) with a msg that awards loyalty points
// (AddPoints) once the order is committed: DoAndSubmit prepares the msg,
// places the order, then submits; dtmd calls AddPoints.
//
// Whenever dtmd has not finished a transaction when the client's call
// returns (FAILED_PRECONDITION from a WaitResult Submit, or a TCC's second
// phase still running), quickstart asks dtmd's Admin service until it ends.
//
// Exit code 0 when every transaction ended as expected, 1 otherwise.
//
// Usage: quickstart [--dtm=localhost:36790] [--busi=localhost:36791]
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "busi.grpc.pb.h"
#include "busi.pb.h"
#include "dtmd/admin/v1/admin.grpc.pb.h"
#include "dtmd/client.h"
#include "dtmd/msg.h"
#include "dtmd/tcc.h"

ABSL_FLAG(std::string, dtm, "localhost:36790", "dtmd's gRPC address");
ABSL_FLAG(std::string, busi, "localhost:36791",
          "busi_server's address, as dtmd reaches it");
ABSL_FLAG(int, wait_seconds, 60,
          "how long to wait for a transaction that is still running");

namespace {

// Asks dtmd's Admin service until the transaction `gid` is final. Returns OK
// for succeed, ABORTED with the rollback reason for failed, DEADLINE_EXCEEDED
// if it is still running after `wait`.
grpc::Status AwaitFinal(dtmd::admin::v1::Admin::StubInterface* admin,
                        const std::string& gid, std::chrono::seconds wait) {
  const auto give_up = std::chrono::steady_clock::now() + wait;
  std::string status = "unknown";
  while (std::chrono::steady_clock::now() < give_up) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    dtmd::admin::v1::GetTransactionRequest request;
    request.set_gid(gid);
    dtmd::admin::v1::GetTransactionReply reply;
    grpc::Status rpc = admin->GetTransaction(&context, request, &reply);
    if (rpc.ok()) {
      status = reply.transaction().status();
      if (status == "succeed") return grpc::Status::OK;
      if (status == "failed") {
        return grpc::Status(grpc::StatusCode::ABORTED,
                            reply.transaction().rollback_reason());
      }
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                      absl::StrCat("still ", status));
}

// Places one order as a saga and returns its outcome (see AwaitFinal).
grpc::Status RunOrderSaga(dtmgimp::Dtm::StubInterface* dtm,
                          dtmd::admin::v1::Admin::StubInterface* admin,
                          const std::string& busi, const std::string& gid,
                          const busi::OrderRequest& order) {
  const std::string payload = order.SerializeAsString();
  const std::string base = busi + "/busi.Busi/";
  dtmd::client::Saga saga(dtm, gid);
  saga.Add(base + "CreateOrder", base + "CancelOrder", payload)
      .Add(base + "DeductStock", base + "RestoreStock", payload)
      .Add(base + "Charge", base + "Refund", payload)
      .SetWaitResult(true);
  grpc::Status status = saga.Submit();
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    std::printf("saga %s: still running, waiting for it to end\n", gid.c_str());
    status = AwaitFinal(
        admin, gid, std::chrono::seconds(absl::GetFlag(FLAGS_wait_seconds)));
  }
  return status;
}

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// The options of the TCC and msg runs: WaitResult, and dtmd's address for the
// branches (metadata dtm-dtm).
dtmd::client::TransOptions WaitingOptions() {
  dtmd::client::TransOptions options;
  options.wait_result = true;
  options.dtm_address = absl::GetFlag(FLAGS_dtm);
  return options;
}

// The final outcome of a transaction whose client call answered `answer`:
// AwaitFinal's when the answer is OK, ABORTED (the business refused) or
// FAILED_PRECONDITION (still running), else the answer itself.
grpc::Status Outcome(dtmd::admin::v1::Admin::StubInterface* admin,
                     const std::string& gid, const absl::Status& answer) {
  if (!answer.ok() && answer.code() != absl::StatusCode::kAborted &&
      answer.code() != absl::StatusCode::kFailedPrecondition) {
    return ToGrpc(answer);
  }
  return AwaitFinal(admin, gid,
                    std::chrono::seconds(absl::GetFlag(FLAGS_wait_seconds)));
}

// Places one order as a TCC transaction; returns the client's answer in
// *answer and the transaction's outcome (see AwaitFinal).
grpc::Status RunOrderTcc(dtmgimp::Dtm::StubInterface* dtm,
                         dtmd::admin::v1::Admin::StubInterface* admin,
                         const std::string& busi, const std::string& gid,
                         const busi::OrderRequest& order,
                         absl::Status* answer) {
  const std::string payload = order.SerializeAsString();
  const std::string base = busi + "/busi.Busi/";
  *answer = dtmd::client::TccGlobalTransaction(
      dtm, gid,
      [&](dtmd::client::Tcc& tcc) {
        absl::Status status = tcc.CallBranch(payload, base + "TryDeductStock",
                                             base + "ConfirmDeductStock",
                                             base + "CancelDeductStock");
        if (!status.ok()) return status;
        return tcc.CallBranch(payload, base + "TryCharge",
                              base + "ConfirmCharge", base + "CancelCharge");
      },
      WaitingOptions());
  return Outcome(admin, gid, *answer);
}

// Places one order with busi_server's PlaceOrder and a msg that awards the
// loyalty points; returns the msg's outcome (see AwaitFinal).
grpc::Status RunOrderMsg(dtmgimp::Dtm::StubInterface* dtm,
                         dtmd::admin::v1::Admin::StubInterface* admin,
                         busi::Busi::StubInterface* shop,
                         const std::string& busi, const std::string& gid,
                         const busi::OrderRequest& order) {
  const std::string base = busi + "/busi.Busi/";
  dtmd::client::Msg msg(dtm, gid, WaitingOptions());
  msg.Add(base + "AddPoints", order.SerializeAsString());
  absl::Status answer = msg.DoAndSubmit(base + "QueryPrepared", [&] {
    // The local transaction, under the barrier QueryPrepared checks.
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    context.AddMetadata("dtm-gid", gid);
    context.AddMetadata("dtm-trans_type", "msg");
    context.AddMetadata("dtm-branch_id", "00");
    context.AddMetadata("dtm-op", "msg");
    google::protobuf::Empty reply;
    grpc::Status status = shop->PlaceOrder(&context, order, &reply);
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  });
  return Outcome(admin, gid, answer);
}

std::string Describe(const grpc::Status& status) {
  return absl::StrCat("code ", status.error_code(), ": ",
                      status.error_message());
}

// Prints how transaction `gid` of `mode` ended and returns whether as
// expected: succeeded, or (expect_failure) failed, then described by
// `failure` (e.g. "failed, compensated (reason: ...)").
bool Report(const std::string& mode, const std::string& gid,
            const grpc::Status& outcome, bool expect_failure,
            const std::string& failure) {
  const bool failed = outcome.error_code() == grpc::StatusCode::ABORTED;
  if (!expect_failure && outcome.ok()) {
    std::printf("%s %s: succeed\n", mode.c_str(), gid.c_str());
    return true;
  }
  if (expect_failure && failed) {
    std::printf("%s %s: %s\n", mode.c_str(), gid.c_str(), failure.c_str());
    return true;
  }
  std::printf("%s %s: expected to %s, got %s\n", mode.c_str(), gid.c_str(),
              expect_failure ? "fail" : "succeed",
              outcome.ok() ? "succeed" : Describe(outcome).c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // Interleave with busi_server's.
  const std::string busi = absl::GetFlag(FLAGS_busi);

  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_dtm),
                                     grpc::InsecureChannelCredentials());
  std::unique_ptr<dtmgimp::Dtm::Stub> dtm = dtmgimp::Dtm::NewStub(channel);
  std::unique_ptr<dtmd::admin::v1::Admin::Stub> admin =
      dtmd::admin::v1::Admin::NewStub(channel);
  std::unique_ptr<busi::Busi::Stub> shop = busi::Busi::NewStub(
      grpc::CreateChannel(busi, grpc::InsecureChannelCredentials()));

  // Two sagas, two TCC transactions, one msg.
  std::string gids[5];
  for (std::string& gid : gids) {
    grpc::Status status = dtmd::client::NewGid(dtm.get(), &gid);
    if (!status.ok()) {
      std::fprintf(stderr, "cannot get a gid from dtmd at %s: %s\n",
                   absl::GetFlag(FLAGS_dtm).c_str(), Describe(status).c_str());
      return 1;
    }
  }
  // A user per run, so every run starts from a balance of 100 even against a
  // busi_server that is already running.
  const std::string user = absl::StrCat("alice-", gids[0]);
  // An order of one apple for `amount`, announced as transaction `gid`.
  auto order = [&user](const char* mode, const std::string& gid,
                       int64_t amount) {
    busi::OrderRequest request;
    request.set_order_id(absl::StrCat("order-", gid));
    request.set_user(user);
    request.set_sku("apple");
    request.set_quantity(1);
    request.set_amount(amount);
    std::printf("%s %s: %s buys 1 apple for %lld\n", mode, gid.c_str(),
                user.c_str(), static_cast<long long>(amount));
    return request;
  };
  bool as_expected = true;

  grpc::Status saga_ok = RunOrderSaga(dtm.get(), admin.get(), busi, gids[0],
                                      order("saga", gids[0], 30));
  as_expected &= Report("saga", gids[0], saga_ok, false, "");
  grpc::Status saga_failed = RunOrderSaga(dtm.get(), admin.get(), busi, gids[1],
                                          order("saga", gids[1], 1000));
  as_expected &= Report("saga", gids[1], saga_failed, true,
                        absl::StrCat("failed, compensated (reason: ",
                                     saga_failed.error_message(), ")"));

  absl::Status answer;
  grpc::Status tcc_ok = RunOrderTcc(dtm.get(), admin.get(), busi, gids[2],
                                    order("tcc", gids[2], 30), &answer);
  as_expected &= Report("tcc", gids[2], tcc_ok, false, "");
  grpc::Status tcc_failed = RunOrderTcc(dtm.get(), admin.get(), busi, gids[3],
                                        order("tcc", gids[3], 1000), &answer);
  as_expected &= Report("tcc", gids[3], tcc_failed, true,
                        absl::StrCat("failed, cancelled (the client's answer: ",
                                     answer.message(), ")"));

  grpc::Status msg_ok = RunOrderMsg(dtm.get(), admin.get(), shop.get(), busi,
                                    gids[4], order("msg", gids[4], 30));
  as_expected &= Report("msg", gids[4], msg_ok, false, "");

  std::printf("quickstart: %s\n", as_expected ? "ok" : "UNEXPECTED RESULT");
  return as_expected ? 0 : 1;
}
