#include "tests/bench/sample_records.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "server/txn/saga.h"
#include "storage/store.h"

namespace dtmd::bench {

std::string SampleStepsJson(int steps) {
  std::string json = "[";
  for (int i = 0; i < steps; ++i) {
    absl::StrAppend(
        &json, i ? "," : "", "{\"action\":\"127.0.0.1:8081/busi.Busi/Action", i,
        "\",\"compensate\":\"127.0.0.1:8081/busi.Busi/Revert", i, "\"}");
  }
  return json + "]";
}

NewTransaction SampleSaga(absl::string_view gid, int steps, int64_t now_ms) {
  dtmgimp::DtmRequest request;
  request.set_gid(std::string(gid));
  request.set_transtype("saga");
  request.set_steps(SampleStepsJson(steps));
  for (int i = 0; i < steps; ++i) request.add_binpayloads(std::string(64, 'p'));
  request.set_customeddata(R"({"concurrent":false,"orders":null})");
  request.mutable_transoptions()->set_waitresult(true);
  Config config;
  config.max_steps = std::max(config.max_steps, steps);
  absl::StatusOr<NewTransaction> txn =
      BuildSaga(request, storage::kStatusSubmitted, now_ms, config);
  if (!txn.ok()) std::abort();  // The request above is valid.
  return *std::move(txn);
}

void MarkActionsSucceeded(NewTransaction* txn, int actions, int64_t now_ms) {
  for (int i = 0; i < actions; ++i) {
    storage::v1::BranchRecord& action = txn->branches[2 * i + 1];
    action.set_status(txn::kBranchSucceed);
    action.set_finish_time_ms(now_ms + i);
    action.set_call_count(1);
  }
}

void MarkFinished(NewTransaction* txn, int64_t finish_ms) {
  MarkActionsSucceeded(txn, static_cast<int>(txn->branches.size() / 2),
                       txn->trans.create_time_ms());
  txn->trans.set_status(storage::kStatusSucceed);
  txn->trans.set_update_time_ms(finish_ms);
  txn->trans.set_finish_time_ms(finish_ms);
}

void SetGid(NewTransaction* txn, const std::string& gid) {
  txn->trans.set_gid(gid);
  for (storage::v1::BranchRecord& b : txn->branches) b.set_gid(gid);
}

}  // namespace dtmd::bench
