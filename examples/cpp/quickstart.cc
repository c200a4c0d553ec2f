// quickstart: two sagas against dtmd and busi_server.
//
// Each saga places an order in three steps, each with its compensation:
//   CreateOrder / CancelOrder, DeductStock / RestoreStock, Charge / Refund.
// The first costs 30, within the user's balance of 100: it succeeds. The
// second costs 1000: Charge answers ABORTED "insufficient balance", so dtmd
// cancels the order and restores the stock; Refund has nothing to undo (the
// charge never happened) and busi_server treats it as a null compensation.
//
// Both sagas are submitted with WaitResult, so Submit returns the outcome:
// OK (succeed) or ABORTED with the rollback reason (failed). If the saga is
// still running when dtmd stops waiting (FAILED_PRECONDITION), quickstart asks
// dtmd's Admin service until the saga ends.
//
// Exit code 0 when both sagas ended as expected, 1 otherwise.
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
#include "absl/strings/str_cat.h"
#include "busi.pb.h"
#include "dtmd/admin/v1/admin.grpc.pb.h"
#include "dtmd/client.h"

ABSL_FLAG(std::string, dtm, "localhost:36790", "dtmd's gRPC address");
ABSL_FLAG(std::string, busi, "localhost:36791",
          "busi_server's address, as dtmd reaches it");
ABSL_FLAG(int, wait_seconds, 60,
          "how long to wait for a saga that is still running");

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

std::string Describe(const grpc::Status& status) {
  return absl::StrCat("code ", status.error_code(), ": ",
                      status.error_message());
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

  std::string gids[2];
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
  bool as_expected = true;

  busi::OrderRequest affordable;
  affordable.set_order_id(absl::StrCat("order-", gids[0]));
  affordable.set_user(user);
  affordable.set_sku("apple");
  affordable.set_quantity(1);
  affordable.set_amount(30);
  std::printf("saga %s: %s buys 1 apple for 30\n", gids[0].c_str(),
              user.c_str());
  grpc::Status first =
      RunOrderSaga(dtm.get(), admin.get(), busi, gids[0], affordable);
  if (first.ok()) {
    std::printf("saga %s: succeed\n", gids[0].c_str());
  } else {
    std::printf("saga %s: expected to succeed, got %s\n", gids[0].c_str(),
                Describe(first).c_str());
    as_expected = false;
  }

  busi::OrderRequest too_expensive = affordable;
  too_expensive.set_order_id(absl::StrCat("order-", gids[1]));
  too_expensive.set_amount(1000);
  std::printf("saga %s: %s buys 1 apple for 1000\n", gids[1].c_str(),
              user.c_str());
  grpc::Status second =
      RunOrderSaga(dtm.get(), admin.get(), busi, gids[1], too_expensive);
  if (second.error_code() == grpc::StatusCode::ABORTED) {
    std::printf("saga %s: failed, compensated (reason: %s)\n", gids[1].c_str(),
                second.error_message().c_str());
  } else {
    std::printf("saga %s: expected to fail and compensate, got %s\n",
                gids[1].c_str(),
                second.ok() ? "succeed" : Describe(second).c_str());
    as_expected = false;
  }

  std::printf("quickstart: %s\n", as_expected ? "ok" : "UNEXPECTED RESULT");
  return as_expected ? 0 : 1;
}
