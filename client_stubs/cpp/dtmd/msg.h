// Reliable messages (TransType "msg") and their topics over DTM's gRPC
// protocol.
//
// A msg is a list of actions that the coordinator calls, in order, once the
// msg is submitted, retrying each until it succeeds: a msg never rolls back.
// The usual use ties it to a local transaction with DoAndSubmit:
//
//   dtmd::client::Msg msg(stub.get(), gid);
//   msg.Add(busi + "/busi.Busi/AddPoints", payload)
//      .Add("topic://order-paid", payload);  // one branch per subscriber
//   absl::Status status = msg.DoAndSubmit(
//       busi + "/busi.Busi/QueryPrepared",
//       [&] { return CommitLocalOrder(gid); });
//
// Prepare stores the msg with the URL the coordinator asks (op "msg", branch
// id "00") when a prepared msg stays unsubmitted past TimeoutToFail: OK
// submits it, ABORTED makes it fail, FAILED_PRECONDITION asks again later.
//
// The stub is not owned and must outlive the Msg. A Msg is not thread-safe;
// the stub may be shared. Errors are absl::Status values with the canonical
// gRPC codes, passed through from the coordinator (see client.h).
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_MSG_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_MSG_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dtmd/options.h"
#include "dtmgimp.grpc.pb.h"
#include "dtmgimp.pb.h"

namespace dtmd::client {

class Msg {
 public:
  Msg(dtmgimp::Dtm::StubInterface* dtm, std::string gid,
      TransOptions options = {});

  // Appends an action: a URL "host:port/package.Service/Method" called with
  // `payload` as the raw request body, or "topic://NAME", which the
  // coordinator expands at Submit to one action per subscriber of NAME
  // (NOT_FOUND when it has none). Branch ids are "01", "02", ... in the order
  // of Add calls.
  Msg& Add(std::string action_url, std::string payload);

  // The coordinator waits this many seconds after Submit before its first
  // action call (0, the default: none).
  Msg& SetDelay(int64_t seconds);

  // The request that Prepare, Submit and Abort send: TransType "msg", Steps a
  // JSON array of {"action": url} objects, BinPayloads in step order,
  // QueryPrepared as given to Prepare, CustomedData {"delay":N} when a delay
  // was set, else empty.
  dtmgimp::DtmRequest BuildRequest() const;

  // Stores the msg as prepared; `query_prepared_url` is the check described
  // above (an empty URL keeps the one given before).
  absl::Status Prepare(std::string query_prepared_url);

  // Submits the msg (prepared or not): the coordinator calls the actions.
  absl::Status Submit();

  // Aborts a prepared msg: it ends failed and no action is called.
  absl::Status Abort();

  // Prepare, then `busi` (the local transaction), then, as DTM's DoAndSubmit:
  //  - busi OK: Submit, and return Submit's status;
  //  - busi ABORTED (the business refused): Abort, and return busi's error;
  //  - any other error (busi's outcome is unknown, e.g. its commit timed out):
  //    ask query_prepared_url at once, as the coordinator would later (empty
  //    body; metadata dtm-gid, dtm-trans_type "msg", dtm-branch_id "00",
  //    dtm-op "msg"): OK -> Submit, ABORTED -> Abort, anything else -> leave
  //    the msg prepared for the coordinator's own check. Returns busi's error.
  // When Prepare fails, busi does not run and Prepare's error is returned.
  // The QueryPrepared handler must tell from its own records whether busi
  // committed (DTM's branch barrier for gid, "00", "msg" does this).
  absl::Status DoAndSubmit(std::string query_prepared_url,
                           const std::function<absl::Status()>& busi);

  const std::string& gid() const { return gid_; }

 private:
  struct Step {
    std::string action;
    std::string payload;
  };

  absl::Status CallWithRequest(
      grpc::Status (dtmgimp::Dtm::StubInterface::*method)(
          grpc::ClientContext*, const dtmgimp::DtmRequest&,
          google::protobuf::Empty*),
      const std::string& rollback_reason = "");

  dtmgimp::Dtm::StubInterface* stub_;  // Not owned.
  std::string gid_;
  TransOptions options_;
  std::vector<Step> steps_;
  int64_t delay_seconds_ = 0;
  std::string query_prepared_;
};

// Topics: a msg action "topic://NAME" goes to every URL subscribed to NAME.
// `remark` is free text kept with the subscription. Subscribe answers
// ALREADY_EXISTS for a URL already subscribed to the topic; Unsubscribe and
// DeleteTopic answer NOT_FOUND for an unknown topic (or subscription).
absl::Status Subscribe(dtmgimp::Dtm::StubInterface* dtm,
                       const std::string& topic, const std::string& url,
                       const std::string& remark,
                       std::chrono::milliseconds timeout = kDefaultCallTimeout);
absl::Status Unsubscribe(
    dtmgimp::Dtm::StubInterface* dtm, const std::string& topic,
    const std::string& url,
    std::chrono::milliseconds timeout = kDefaultCallTimeout);
absl::Status DeleteTopic(
    dtmgimp::Dtm::StubInterface* dtm, const std::string& topic,
    std::chrono::milliseconds timeout = kDefaultCallTimeout);

}  // namespace dtmd::client

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_MSG_H_
