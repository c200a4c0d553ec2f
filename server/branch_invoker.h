// BranchInvoker: calls a business branch over gRPC without knowing its proto.
//
// A branch URL is "host:port/package.Service/Method". The call is a unary
// generic call of "/package.Service/Method" whose request body is the stored
// payload bytes, sent unchanged; the reply body is ignored. One channel is
// kept per target and shared by every call to it, in a bounded cache that
// drops idle channels (channel_cache.h).
#ifndef DTMD_SERVER_BRANCH_INVOKER_H_
#define DTMD_SERVER_BRANCH_INVOKER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/generic/generic_stub.h"
#include "server/channel_cache.h"
#include "server/security.h"
#include "server/timer_queue.h"

namespace dtmd {

struct BranchCall {
  std::string url;
  std::string payload;  // sent as the request body, byte for byte.
  int64_t timeout_ms = 3000;
  // dtm-* metadata and the transaction's BranchHeaders.
  std::vector<std::pair<std::string, std::string>> metadata;
};

// The longest answer message dtmd keeps (as last_error and rollback reason).
inline constexpr size_t kMaxBranchAnswerMessageBytes = 1024;

// A branch's status message as dtmd keeps it: the first bytes of `message`
// that fit in kMaxBranchAnswerMessageBytes, cut at a character boundary, with
// every byte that is not part of valid UTF-8 replaced by '?'. Why: the
// message goes into proto3 string fields of stored records, which protobuf
// refuses to read back unless they are UTF-8, and a branch may answer with
// any bytes and any length, on every retry.
std::string BranchAnswerMessage(absl::string_view message);

// What the branch answered: a gRPC status code and message (already passed
// through BranchAnswerMessage by GrpcBranchInvoker). Transport failures and
// deadlines arrive as UNAVAILABLE / DEADLINE_EXCEEDED etc.
struct BranchAnswer {
  int code = 0;
  std::string message;
};

// Thread-safe. Completion callbacks run on gRPC's threads and must not block.
class BranchInvoker {
 public:
  virtual ~BranchInvoker() = default;
  // `done` is called exactly once.
  virtual void Call(BranchCall call,
                    std::function<void(BranchAnswer)> done) = 0;
  // Cancels every call in flight (their `done` gets CANCELLED soon after).
  // For shutdown, when calls would outlive the wait for them.
  virtual void CancelAll() {}
};

class GrpcBranchInvoker : public BranchInvoker {
 public:
  // `clock` (for channel idleness) is not owned and must outlive this.
  // Targets `tls` selects are called over TLS with its credentials, the
  // others in plaintext.
  explicit GrpcBranchInvoker(ChannelCache::Options channels = {},
                             const Clock* clock = SystemClock::Get(),
                             BranchTls tls = {});
  void Call(BranchCall call, std::function<void(BranchAnswer)> done) override;
  void CancelAll() override;

 private:
  absl::Mutex calls_mu_;
  absl::flat_hash_set<grpc::ClientContext*> in_flight_
      ABSL_GUARDED_BY(calls_mu_);

  ChannelCache channels_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_BRANCH_INVOKER_H_
