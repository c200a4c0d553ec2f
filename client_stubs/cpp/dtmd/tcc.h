// TCC (try-confirm-cancel) global transactions over DTM's gRPC protocol.
//
//   absl::Status status = dtmd::client::TccGlobalTransaction(
//       stub.get(), gid, [&](dtmd::client::Tcc& tcc) {
//         absl::Status s = tcc.CallBranch(payload, busi + "/busi.Busi/TryPay",
//                                         busi + "/busi.Busi/ConfirmPay",
//                                         busi + "/busi.Busi/CancelPay");
//         if (!s.ok()) return s;  // the transaction is aborted: cancels run
//         return tcc.CallBranch(...);
//       });
//
// The client drives the first phase itself: it prepares the transaction,
// registers each branch with the coordinator and then calls its Try URL. The
// coordinator runs the second phase: Confirm of every registered branch after
// Submit, Cancel after Abort, in reverse registration order, retried until
// they succeed. Registering before Try means a Try whose answer is lost (or
// that ran after the client gave up) is still cancelled.
//
// Errors are absl::Status values with the canonical gRPC codes: a branch's
// status passes through unchanged (ABORTED: the business refused), and so do
// the coordinator's (see client.h).
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_TCC_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_TCC_H_

#include <google/protobuf/message_lite.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "dtmd/internal/rpc.h"
#include "dtmd/options.h"
#include "dtmgimp.grpc.pb.h"

namespace dtmd::client {

class Tcc;

// Runs one TCC transaction with gid `gid`: Prepare (TransType "tcc", Steps
// "null", `options`), then `body`. When body returns OK, Submit (the
// coordinator confirms every branch) and return Submit's status (with
// options.wait_result: the transaction's outcome). Otherwise Abort with body's
// message as rollback reason (the coordinator cancels every registered
// branch) and return body's error; Abort's own error is not reported, a
// prepared TCC is aborted by the coordinator at TimeoutToFail anyway. When
// Prepare fails, body does not run and Prepare's error is returned.
//
// `dtm` is not owned and must be non-null; body runs on the calling thread,
// which blocks for every call.
absl::Status TccGlobalTransaction(dtmgimp::Dtm::StubInterface* dtm,
                                  const std::string& gid,
                                  const std::function<absl::Status(Tcc&)>& body,
                                  const TransOptions& options = {});

// The transaction handed to TccGlobalTransaction's body. Not thread-safe: call
// CallBranch from the body's thread only.
class Tcc {
 public:
  Tcc(const Tcc&) = delete;
  Tcc& operator=(const Tcc&) = delete;

  // Adds a branch: takes the next branch id ("01", "02", ...), registers it
  // with the coordinator (RegisterBranch: Data {"confirm": confirm_url,
  // "cancel": cancel_url}, BusiPayload `payload`), then calls try_url with
  // `payload` as the raw request body and the metadata dtm-gid,
  // dtm-trans_type "tcc", dtm-branch_id, dtm-op "try", dtm-dtm and the
  // branch headers; its deadline is RequestTimeout, else the call timeout.
  // URLs are "host:port/package.Service/Method"; Confirm and Cancel receive
  // the same payload. Returns RegisterBranch's error (Try is then not
  // called), else Try's status; on OK the Try reply body goes to *reply when
  // reply is not null.
  absl::Status CallBranch(const std::string& payload,
                          const std::string& try_url,
                          const std::string& confirm_url,
                          const std::string& cancel_url,
                          std::string* reply = nullptr);

  // The same with a message serialized as the payload; on OK the Try reply is
  // parsed into *reply when not null (INTERNAL if it does not parse).
  absl::Status CallBranch(const google::protobuf::MessageLite& request,
                          const std::string& try_url,
                          const std::string& confirm_url,
                          const std::string& cancel_url,
                          google::protobuf::MessageLite* reply);

  const std::string& gid() const { return gid_; }

 private:
  friend absl::Status TccGlobalTransaction(
      dtmgimp::Dtm::StubInterface* dtm, const std::string& gid,
      const std::function<absl::Status(Tcc&)>& body,
      const TransOptions& options);

  Tcc(dtmgimp::Dtm::StubInterface* dtm, std::string gid, TransOptions options);

  dtmgimp::Dtm::StubInterface* const dtm_;  // Not owned.
  const std::string gid_;
  const TransOptions options_;
  internal::BranchIdGen branch_ids_;
  internal::BranchCaller branches_;
};

}  // namespace dtmd::client

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_TCC_H_
