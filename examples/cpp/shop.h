// The quick start's shop, kept in memory: orders, stock per sku (each sku
// starts at 100), a balance per user (each user starts at 100) and loyalty
// points. busi_server serves it as the busi.Busi methods of busi.proto:
//   - saga: three actions, each with its compensation: CreateOrder /
//     CancelOrder, DeductStock / RestoreStock, Charge / Refund;
//   - TCC: TryDeductStock / ConfirmDeductStock / CancelDeductStock and
//     TryCharge / ConfirmCharge / CancelCharge: Try reserves (stock set aside,
//     money frozen), Confirm makes it final, Cancel gives it back;
//   - msg: PlaceOrder (the local transaction, called by the client),
//     QueryPrepared (dtmd's check) and AddPoints (the msg's action).
// Charge and TryCharge answer ABORTED "insufficient balance" when the user
// cannot pay, which makes dtmd compensate the saga or cancel the TCC.
//
// Every method goes through a branch barrier keyed by the DTM metadata
// (dtm-gid, dtm-branch_id), as a real service must, because dtmd delivers each
// call at least once and in any order after a failure:
//   - a repeated call does nothing the second time;
//   - a compensation or Cancel whose action or Try never ran (it failed, or
//     has not arrived yet) does nothing ("null compensation"), and an action
//     arriving after its compensation does nothing either (it would never be
//     undone);
//   - QueryPrepared answers OK once PlaceOrder committed for the gid, and
//     otherwise ABORTED, blocking any later PlaceOrder of that gid so that the
//     answer stays true (DTM's barrier does the same for DoAndSubmit).
// A real service keeps the barrier in the same database transaction as the
// business change; here one mutex makes both atomic.
#ifndef DTMD_EXAMPLES_CPP_SHOP_H_
#define DTMD_EXAMPLES_CPP_SHOP_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "busi.pb.h"

namespace busi {

// The DTM metadata of one call.
struct BranchCall {
  std::string method;  // "/busi.Busi/Charge"
  std::string gid;
  std::string branch_id;
  std::string op;
};

// Thread-safe.
class Shop {
 public:
  Shop();

  // Runs `call` with the raw request bytes `payload` (an OrderRequest).
  // Sets *note to a short human-readable account of what happened.
  grpc::Status Handle(const BranchCall& call, const std::string& payload,
                      std::string* note);

 private:
  struct Order {
    OrderRequest request;
    std::string status;  // "created" or "cancelled"
  };
  // How a method goes through the barrier.
  enum class Kind {
    kAction,        // saga action, TCC Try, msg action
    kCompensation,  // saga compensation, TCC Cancel
    kConfirm,       // TCC Confirm
    kLocal,         // msg local transaction (PlaceOrder)
    kQuery,         // msg QueryPrepared
  };
  // The business change; runs with mu_ held.
  using Run = grpc::Status (Shop::*)(const OrderRequest&, std::string*);
  struct Method {
    Kind kind;
    Run run;  // Null for kQuery.
  };
  // (gid, branch_id, "action" | "compensate" | "confirm" | "rollback")
  using BarrierKey = std::tuple<std::string, std::string, std::string>;

  grpc::Status Pass(const BranchCall& call, const Method& method,
                    const OrderRequest& request, bool parsed, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::Status CreateOrder(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status CancelOrder(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status DeductStock(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status RestoreStock(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status Charge(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status Refund(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status TryDeductStock(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status ConfirmDeductStock(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status CancelDeductStock(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status TryCharge(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status ConfirmCharge(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status CancelCharge(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status AddPoints(const OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Amounts by key, created at `initial` on first use.
  static int64_t& Account(std::map<std::string, int64_t>* accounts,
                          const std::string& key, int64_t initial) {
    return accounts->try_emplace(key, initial).first->second;
  }

  std::map<std::string, Method> methods_;  // Immutable after construction.

  absl::Mutex mu_;
  std::map<std::string, Order> orders_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> stock_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> reserved_stock_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> balance_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> frozen_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> points_ ABSL_GUARDED_BY(mu_);
  std::set<BarrierKey> barrier_ ABSL_GUARDED_BY(mu_);
};

}  // namespace busi

#endif  // DTMD_EXAMPLES_CPP_SHOP_H_
