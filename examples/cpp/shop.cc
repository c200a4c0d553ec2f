#include "shop.h"

#include "absl/strings/str_cat.h"

namespace busi {
namespace {

constexpr int64_t kInitialStock = 100;
constexpr int64_t kInitialBalance = 100;

}  // namespace

Shop::Shop() {
  methods_ = {
      {"/busi.Busi/CreateOrder", {Kind::kAction, &Shop::CreateOrder}},
      {"/busi.Busi/CancelOrder", {Kind::kCompensation, &Shop::CancelOrder}},
      {"/busi.Busi/DeductStock", {Kind::kAction, &Shop::DeductStock}},
      {"/busi.Busi/RestoreStock", {Kind::kCompensation, &Shop::RestoreStock}},
      {"/busi.Busi/Charge", {Kind::kAction, &Shop::Charge}},
      {"/busi.Busi/Refund", {Kind::kCompensation, &Shop::Refund}},
      {"/busi.Busi/TryDeductStock", {Kind::kAction, &Shop::TryDeductStock}},
      {"/busi.Busi/ConfirmDeductStock",
       {Kind::kConfirm, &Shop::ConfirmDeductStock}},
      {"/busi.Busi/CancelDeductStock",
       {Kind::kCompensation, &Shop::CancelDeductStock}},
      {"/busi.Busi/TryCharge", {Kind::kAction, &Shop::TryCharge}},
      {"/busi.Busi/ConfirmCharge", {Kind::kConfirm, &Shop::ConfirmCharge}},
      {"/busi.Busi/CancelCharge", {Kind::kCompensation, &Shop::CancelCharge}},
      {"/busi.Busi/PlaceOrder", {Kind::kLocal, &Shop::CreateOrder}},
      {"/busi.Busi/QueryPrepared", {Kind::kQuery, nullptr}},
      {"/busi.Busi/AddPoints", {Kind::kAction, &Shop::AddPoints}},
  };
}

grpc::Status Shop::Handle(const BranchCall& call, const std::string& payload,
                          std::string* note) {
  auto method = methods_.find(call.method);
  if (method == methods_.end()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no such method");
  }
  OrderRequest request;
  const bool parsed = request.ParseFromString(payload);
  absl::MutexLock lock(&mu_);
  return Pass(call, method->second, request, parsed, note);
}

grpc::Status Shop::Pass(const BranchCall& call, const Method& method,
                        const OrderRequest& request, bool parsed,
                        std::string* note) {
  const BarrierKey action{call.gid, call.branch_id, "action"};
  const BarrierKey rollback{call.gid, call.branch_id, "rollback"};
  switch (method.kind) {
    case Kind::kCompensation: {
      // Marking the action as done first is what blocks a late action.
      const bool action_never_ran = barrier_.insert(action).second;
      const bool first_time =
          barrier_.insert({call.gid, call.branch_id, "compensate"}).second;
      if (!first_time) {
        *note = "repeated compensation, skipped";
        return grpc::Status::OK;
      }
      if (action_never_ran) {
        *note = "null compensation: the action never ran, skipped";
        return grpc::Status::OK;
      }
      return (this->*method.run)(request, note);
    }
    case Kind::kConfirm:
      if (!barrier_.insert({call.gid, call.branch_id, "confirm"}).second) {
        *note = "repeated confirm, skipped";
        return grpc::Status::OK;
      }
      return (this->*method.run)(request, note);
    case Kind::kQuery:
      if (barrier_.count(action) > 0 && barrier_.count(rollback) == 0) {
        *note = "the local transaction committed";
        return grpc::Status::OK;
      }
      barrier_.insert(action);  // Blocks a PlaceOrder still on its way.
      barrier_.insert(rollback);
      *note = "the local transaction never committed";
      return grpc::Status(grpc::StatusCode::ABORTED, "rolled back");
    case Kind::kLocal:
    case Kind::kAction:
      break;
  }

  if (!parsed) {
    return grpc::Status(grpc::StatusCode::ABORTED, "bad OrderRequest payload");
  }
  if (!barrier_.insert(action).second) {
    if (method.kind == Kind::kLocal) {
      // The caller must learn that its local transaction did not happen now.
      return grpc::Status(grpc::StatusCode::ABORTED,
                          barrier_.count(rollback) > 0
                              ? "rolled back by QueryPrepared"
                              : "already placed");
    }
    *note = "repeated or already compensated, skipped";
    return grpc::Status::OK;
  }
  grpc::Status status = (this->*method.run)(request, note);
  // A refused action changed nothing, so its compensation must do nothing.
  if (!status.ok()) barrier_.erase(action);
  return status;
}

grpc::Status Shop::CreateOrder(const OrderRequest& r, std::string* note) {
  orders_[r.order_id()] = Order{r, "created"};
  *note = absl::StrCat("order ", r.order_id(), " created: ", r.quantity(),
                       " x ", r.sku(), " for ", r.user());
  return grpc::Status::OK;
}

grpc::Status Shop::CancelOrder(const OrderRequest& r, std::string* note) {
  orders_[r.order_id()].status = "cancelled";
  *note = absl::StrCat("order ", r.order_id(), " cancelled");
  return grpc::Status::OK;
}

grpc::Status Shop::DeductStock(const OrderRequest& r, std::string* note) {
  int64_t& stock = Account(&stock_, r.sku(), kInitialStock);
  if (stock < r.quantity()) {
    *note = absl::StrCat("stock of ", r.sku(), " is ", stock);
    return grpc::Status(grpc::StatusCode::ABORTED, "insufficient stock");
  }
  *note = absl::StrCat("stock of ", r.sku(), ": ", stock, " -> ",
                       stock - r.quantity());
  stock -= r.quantity();
  return grpc::Status::OK;
}

grpc::Status Shop::RestoreStock(const OrderRequest& r, std::string* note) {
  int64_t& stock = Account(&stock_, r.sku(), kInitialStock);
  *note = absl::StrCat("stock of ", r.sku(), ": ", stock, " -> ",
                       stock + r.quantity());
  stock += r.quantity();
  return grpc::Status::OK;
}

grpc::Status Shop::Charge(const OrderRequest& r, std::string* note) {
  int64_t& balance = Account(&balance_, r.user(), kInitialBalance);
  if (balance < r.amount()) {
    *note = absl::StrCat("balance of ", r.user(), " is ", balance,
                         ", the order costs ", r.amount());
    return grpc::Status(grpc::StatusCode::ABORTED, "insufficient balance");
  }
  *note = absl::StrCat("balance of ", r.user(), ": ", balance, " -> ",
                       balance - r.amount());
  balance -= r.amount();
  return grpc::Status::OK;
}

grpc::Status Shop::Refund(const OrderRequest& r, std::string* note) {
  int64_t& balance = Account(&balance_, r.user(), kInitialBalance);
  *note = absl::StrCat("balance of ", r.user(), ": ", balance, " -> ",
                       balance + r.amount());
  balance += r.amount();
  return grpc::Status::OK;
}

// TCC: the same changes as the saga's, with the amount held in reserve
// between Try and Confirm or Cancel.
grpc::Status Shop::TryDeductStock(const OrderRequest& r, std::string* note) {
  grpc::Status status = DeductStock(r, note);
  if (status.ok()) {
    reserved_stock_[r.sku()] += r.quantity();
    absl::StrAppend(note, ", ", r.quantity(), " reserved");
  }
  return status;
}

grpc::Status Shop::ConfirmDeductStock(const OrderRequest& r,
                                      std::string* note) {
  reserved_stock_[r.sku()] -= r.quantity();
  *note = absl::StrCat(r.quantity(), " x ", r.sku(), " out of reserve: sold");
  return grpc::Status::OK;
}

grpc::Status Shop::CancelDeductStock(const OrderRequest& r, std::string* note) {
  reserved_stock_[r.sku()] -= r.quantity();
  return RestoreStock(r, note);
}

grpc::Status Shop::TryCharge(const OrderRequest& r, std::string* note) {
  grpc::Status status = Charge(r, note);
  if (status.ok()) {
    frozen_[r.user()] += r.amount();
    absl::StrAppend(note, ", ", r.amount(), " frozen");
  }
  return status;
}

grpc::Status Shop::ConfirmCharge(const OrderRequest& r, std::string* note) {
  frozen_[r.user()] -= r.amount();
  *note = absl::StrCat(r.amount(), " frozen for ", r.user(), ": paid");
  return grpc::Status::OK;
}

grpc::Status Shop::CancelCharge(const OrderRequest& r, std::string* note) {
  frozen_[r.user()] -= r.amount();
  return Refund(r, note);
}

grpc::Status Shop::AddPoints(const OrderRequest& r, std::string* note) {
  int64_t& points = points_[r.user()];
  *note = absl::StrCat("points of ", r.user(), ": ", points, " -> ",
                       points + r.amount() / 10);
  points += r.amount() / 10;
  return grpc::Status::OK;
}

}  // namespace busi
