#include "tests/integration/ledger_modes.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dtmgimp.grpc.pb.h"
#include "tests/integration/ledger_saga.h"

namespace dtmd::testing {
namespace {

using ::dtmgimp::DtmBranchRequest;
using ::dtmgimp::DtmRequest;

constexpr char kTryMethod[] = "/ledger.Ledger/Reserve";
constexpr char kConfirmMethod[] = "/ledger.Ledger/Commit";
constexpr char kCancelMethod[] = "/ledger.Ledger/Release";
constexpr char kMsgActionMethod[] = "/ledger.Ledger/Credit";
constexpr char kQueryPreparedMethod[] = "/ledger.Ledger/QueryPrepared";
constexpr char kResumeMethod[] = "/ledger.Ledger/Resume";
constexpr int kMsgActions = 2;

// A call of a Dtm method with the load's deadline; the answer's code.
template <typename Request, typename Reply>
grpc::StatusCode CallDtm(const DtmdProcess& dtmd, absl::Duration timeout,
                         grpc::Status (dtmgimp::Dtm::Stub::*method)(
                             grpc::ClientContext*, const Request&, Reply*),
                         const Request& request, Reply* reply) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(timeout));
  return (dtmd.dtm()->*method)(&context, request, reply).error_code();
}

grpc::StatusCode Command(const DtmdProcess& dtmd, absl::Duration timeout,
                         grpc::Status (dtmgimp::Dtm::Stub::*method)(
                             grpc::ClientContext*, const DtmRequest&,
                             google::protobuf::Empty*),
                         const DtmRequest& request) {
  google::protobuf::Empty reply;
  return CallDtm(dtmd, timeout, method, request, &reply);
}

DtmRequest Request(const std::string& gid, const std::string& trans_type) {
  DtmRequest r;
  r.set_gid(gid);
  r.set_transtype(trans_type);
  r.set_steps("null");  // What DTM's Go client sends for tcc and workflow.
  return r;
}

std::string BranchId(int i) { return absl::StrFormat("%02d", i + 1); }

}  // namespace

const char* ModeScriptName(ModeScript script) {
  switch (script) {
    case ModeScript::kTccConfirm:
      return "tcc confirm";
    case ModeScript::kTccAbort:
      return "tcc abort";
    case ModeScript::kTccTimeout:
      return "tcc timeout";
    case ModeScript::kMsgSubmit:
      return "msg submit";
    case ModeScript::kMsgDirect:
      return "msg direct";
    case ModeScript::kMsgCommitted:
      return "msg committed";
    case ModeScript::kMsgRolledBack:
      return "msg rolled back";
    case ModeScript::kWorkflowSucceed:
      return "workflow succeed";
    case ModeScript::kWorkflowFailed:
      return "workflow failed";
    case ModeScript::kWorkflowUnfinished:
      return "workflow unfinished";
  }
  return "?";
}

ModeScript MixedScript(int i) {
  constexpr ModeScript kMix[] = {
      ModeScript::kTccConfirm,      ModeScript::kMsgSubmit,
      ModeScript::kWorkflowSucceed, ModeScript::kTccAbort,
      ModeScript::kMsgRolledBack,   ModeScript::kTccConfirm,
      ModeScript::kMsgCommitted,    ModeScript::kTccTimeout,
      ModeScript::kMsgDirect,       ModeScript::kWorkflowFailed,
      ModeScript::kMsgSubmit,       ModeScript::kWorkflowUnfinished};
  return kMix[i % std::size(kMix)];
}

std::string ModeGid(const std::string& prefix, int n) {
  return absl::StrCat(prefix, "-", n,
                      MixedScript(n) == ModeScript::kMsgRolledBack
                          ? LedgerBranchServer::kRolledBackGidSuffix
                          : "");
}

void ModeBook::Record(const std::string& gid, const ModeTxn& txn) {
  absl::MutexLock lock(&mu_);
  txns_[gid] = txn;
  if (txn.completed) ++completed_;
}

std::map<std::string, ModeTxn> ModeBook::All() const {
  absl::MutexLock lock(&mu_);
  return txns_;
}

int ModeBook::completed() const {
  absl::MutexLock lock(&mu_);
  return completed_;
}

ModeLoad::ModeLoad(const DtmdProcess& dtmd, LedgerBranchServer* ledger,
                   ModeBook* book, Options options)
    : dtmd_(dtmd),
      ledger_(ledger),
      book_(book),
      options_(std::move(options)),
      load_(options_, [this](int n) { return RunScript(n); }) {}

bool ModeLoad::RunScript(int n) {
  const std::string gid = ModeGid(options_.gid_prefix, n);
  const ModeScript script = MixedScript(n);
  ModeTxn txn;
  switch (script) {
    case ModeScript::kTccConfirm:
    case ModeScript::kTccAbort:
    case ModeScript::kTccTimeout:
      txn = RunTcc(gid, script, n);
      break;
    case ModeScript::kMsgSubmit:
    case ModeScript::kMsgDirect:
    case ModeScript::kMsgCommitted:
    case ModeScript::kMsgRolledBack:
      txn = RunMsg(gid, script, n);
      break;
    case ModeScript::kWorkflowSucceed:
    case ModeScript::kWorkflowFailed:
    case ModeScript::kWorkflowUnfinished:
      txn = RunWorkflow(gid, script);
      break;
  }
  book_->Record(gid, txn);
  return txn.completed;
}

ModeTxn ModeLoad::RunTcc(const std::string& gid, ModeScript script, int n) {
  ModeTxn txn;
  txn.script = script;
  txn.branches = 2 + n % 2;
  const absl::Duration timeout = options_.call_timeout;
  DtmRequest prepare = Request(gid, "tcc");
  prepare.mutable_transoptions()->set_timeouttofail(
      script == ModeScript::kTccTimeout ? kTccTimeoutS : kTccGraceS);
  if (Command(dtmd_, timeout, &dtmgimp::Dtm::Stub::Prepare, prepare) !=
      grpc::StatusCode::OK) {
    return txn;
  }
  txn.begun = true;
  // As DTM's client does: register the branch, then try it, so that a
  // cancel covers every try that may have run.
  bool tried_all = true;
  for (int i = 0; i < txn.branches && tried_all; ++i) {
    DtmBranchRequest branch;
    branch.set_gid(gid);
    branch.set_transtype("tcc");
    branch.set_branchid(BranchId(i));
    branch.set_busipayload(absl::StrCat("tcc-", i));
    (*branch.mutable_data())["confirm"] = ledger_->Url(kConfirmMethod);
    (*branch.mutable_data())["cancel"] = ledger_->Url(kCancelMethod);
    google::protobuf::Empty reply;
    if (CallDtm(dtmd_, timeout, &dtmgimp::Dtm::Stub::RegisterBranch, branch,
                &reply) != grpc::StatusCode::OK) {
      return txn;  // dtmd gone: the timeout ends it.
    }
    txn.registered.push_back(BranchId(i));
    const bool refuse =
        script == ModeScript::kTccAbort && i == txn.branches - 1;
    tried_all =
        ledger_
            ->Try(kTryMethod, gid, BranchId(i),
                  refuse
                      ? LedgerBranchServer::FailingPayload(kInsufficientBalance)
                      : absl::StrCat("try-", i))
            .ok();
  }
  if (script == ModeScript::kTccTimeout && tried_all) {
    txn.completed = true;
    return txn;
  }
  DtmRequest closing = Request(gid, "tcc");
  if (tried_all) {
    txn.closing = "Submit";
    txn.closing_code =
        Command(dtmd_, timeout, &dtmgimp::Dtm::Stub::Submit, closing);
  } else {
    txn.closing = "Abort";
    closing.set_rollbackreason(kInsufficientBalance);
    txn.closing_code =
        Command(dtmd_, timeout, &dtmgimp::Dtm::Stub::Abort, closing);
  }
  txn.completed = txn.closing_code == grpc::StatusCode::OK &&
                  tried_all == (script == ModeScript::kTccConfirm);
  return txn;
}

ModeTxn ModeLoad::RunMsg(const std::string& gid, ModeScript script, int n) {
  ModeTxn txn;
  txn.script = script;
  txn.branches = kMsgActions;
  const absl::Duration timeout = options_.call_timeout;
  DtmRequest msg = Request(gid, "msg");
  std::string steps = "[";
  for (int i = 0; i < kMsgActions; ++i) {
    absl::StrAppend(&steps, i == 0 ? "" : ",", "{\"action\":\"",
                    ledger_->Url(kMsgActionMethod), "\"}");
    msg.add_binpayloads(absl::StrCat("credit-", i));
  }
  msg.set_steps(steps + "]");
  msg.set_queryprepared(ledger_->Url(kQueryPreparedMethod));
  msg.mutable_transoptions()->set_timeouttofail(1 + n % 2);
  if (script != ModeScript::kMsgDirect) {
    if (Command(dtmd_, timeout, &dtmgimp::Dtm::Stub::Prepare, msg) !=
        grpc::StatusCode::OK) {
      return txn;
    }
    txn.begun = true;
    if (script != ModeScript::kMsgSubmit) {
      txn.completed = true;  // Left for the QueryPrepared check.
      return txn;
    }
  }
  txn.closing = "Submit";
  txn.closing_code = Command(dtmd_, timeout, &dtmgimp::Dtm::Stub::Submit, msg);
  if (script == ModeScript::kMsgDirect) {
    txn.begun = txn.closing_code == grpc::StatusCode::OK;
  }
  txn.completed = txn.closing_code == grpc::StatusCode::OK;
  return txn;
}

ModeTxn ModeLoad::RunWorkflow(const std::string& gid, ModeScript script) {
  ModeTxn txn;
  txn.script = script;
  txn.branches = 1;
  const absl::Duration timeout = options_.call_timeout;
  const bool fails = script == ModeScript::kWorkflowFailed;
  DtmRequest workflow = Request(gid, "workflow");
  workflow.set_queryprepared(ledger_->Url(kResumeMethod));
  // {"name":"ledger_wf","data":base64("input")}
  workflow.set_customeddata(absl::StrCat("{\"name\":\"", kLedgerWorkflowName,
                                         "\",\"data\":\"aW5wdXQ=\"}"));
  workflow.mutable_transoptions()->set_retryinterval(kWorkflowRetryIntervalS);
  dtmgimp::DtmProgressesReply progresses;
  if (CallDtm(dtmd_, timeout, &dtmgimp::Dtm::Stub::PrepareWorkflow, workflow,
              &progresses) != grpc::StatusCode::OK) {
    return txn;
  }
  txn.begun = true;
  DtmBranchRequest step;
  step.set_gid(gid);
  step.set_transtype("workflow");
  step.set_branchid(BranchId(0));
  step.set_busipayload(fails ? "boom" : "r1");
  (*step.mutable_data())["op"] = "action";
  (*step.mutable_data())["status"] = fails ? "failed" : "succeed";
  google::protobuf::Empty reply;
  if (CallDtm(dtmd_, timeout, &dtmgimp::Dtm::Stub::RegisterBranch, step,
              &reply) != grpc::StatusCode::OK) {
    return txn;
  }
  txn.registered.push_back(BranchId(0));
  if (script == ModeScript::kWorkflowUnfinished) {
    txn.completed = true;
    return txn;
  }
  DtmRequest submit = Request(gid, "workflow");
  (*submit.mutable_reqextra())["status"] = fails ? "failed" : "succeed";
  if (fails) {
    (*submit.mutable_reqextra())["rollback_reason"] = "boom";
  } else {
    (*submit.mutable_reqextra())["result"] = "b2s=";
  }
  txn.closing = "Submit";
  txn.closing_code =
      Command(dtmd_, timeout, &dtmgimp::Dtm::Stub::Submit, submit);
  txn.completed = txn.closing_code == grpc::StatusCode::OK;
  return txn;
}

}  // namespace dtmd::testing
