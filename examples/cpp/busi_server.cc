// busi_server: the quick start's business service.
//
// A shop kept in memory: orders, stock per sku (each sku starts at 100) and a
// balance per user (each user starts at 100). It serves the busi.Busi methods
// of busi.proto: three saga actions, each with its compensation:
//   CreateOrder / CancelOrder, DeductStock / RestoreStock, Charge / Refund.
// Charge answers ABORTED "insufficient balance" when the user cannot pay, which
// makes dtmd compensate the saga.
//
// Every handler goes through a branch barrier keyed by the DTM metadata
// (dtm-gid, dtm-branch_id), as a real service must, because dtmd delivers each
// call at least once and in any order after a failure:
//   - a repeated action or compensation does nothing the second time;
//   - a compensation whose action never ran (it failed, or has not arrived yet)
//     does nothing ("null compensation"), and an action arriving after its
//     compensation does nothing either (it would never be undone).
// A real service keeps the barrier in the same database transaction as the
// business change; here one mutex makes both atomic.
//
// Usage: busi_server [--port=36791] [--listen_address=localhost]
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "busi.pb.h"

ABSL_FLAG(int, port, 36791, "gRPC port to listen on");
ABSL_FLAG(std::string, listen_address, "localhost",
          "host or IP address to listen on");

namespace {

constexpr int64_t kInitialStock = 100;
constexpr int64_t kInitialBalance = 100;

// The DTM metadata of one call.
struct BranchCall {
  std::string method;
  std::string gid;
  std::string branch_id;
  std::string op;
};

// The in-memory shop. Thread-safe.
class Shop {
 public:
  Shop();

  // Runs `call` with the raw request bytes `payload`. Sets *note to a short
  // human-readable account of what happened.
  grpc::Status Handle(const BranchCall& call, const std::string& payload,
                      std::string* note);

 private:
  struct Order {
    busi::OrderRequest request;
    std::string status;  // "created" or "cancelled"
  };
  struct Method {
    bool compensation;
    // The business change; runs with mu_ held.
    grpc::Status (Shop::*run)(const busi::OrderRequest&, std::string*);
  };
  // (gid, branch_id, "action" | "compensate")
  using BarrierKey = std::tuple<std::string, std::string, std::string>;

  grpc::Status CreateOrder(const busi::OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status CancelOrder(const busi::OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status DeductStock(const busi::OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status RestoreStock(const busi::OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status Charge(const busi::OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status Refund(const busi::OrderRequest& r, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  int64_t& Stock(const std::string& sku) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stock_.try_emplace(sku, kInitialStock).first->second;
  }
  int64_t& Balance(const std::string& user) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return balance_.try_emplace(user, kInitialBalance).first->second;
  }

  std::map<std::string, Method> methods_;  // Immutable after construction.

  absl::Mutex mu_;
  std::map<std::string, Order> orders_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> stock_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> balance_ ABSL_GUARDED_BY(mu_);
  std::set<BarrierKey> barrier_ ABSL_GUARDED_BY(mu_);
};

Shop::Shop() {
  methods_ = {
      {"/busi.Busi/CreateOrder", {false, &Shop::CreateOrder}},
      {"/busi.Busi/CancelOrder", {true, &Shop::CancelOrder}},
      {"/busi.Busi/DeductStock", {false, &Shop::DeductStock}},
      {"/busi.Busi/RestoreStock", {true, &Shop::RestoreStock}},
      {"/busi.Busi/Charge", {false, &Shop::Charge}},
      {"/busi.Busi/Refund", {true, &Shop::Refund}},
  };
}

grpc::Status Shop::Handle(const BranchCall& call, const std::string& payload,
                          std::string* note) {
  auto method = methods_.find(call.method);
  if (method == methods_.end()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no such method");
  }
  busi::OrderRequest request;
  const bool parsed = request.ParseFromString(payload);

  absl::MutexLock lock(&mu_);
  const BarrierKey action{call.gid, call.branch_id, "action"};
  if (method->second.compensation) {
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
    return (this->*method->second.run)(request, note);
  }

  if (!parsed) {
    return grpc::Status(grpc::StatusCode::ABORTED, "bad OrderRequest payload");
  }
  if (!barrier_.insert(action).second) {
    *note = "repeated or already compensated, skipped";
    return grpc::Status::OK;
  }
  grpc::Status status = (this->*method->second.run)(request, note);
  // A refused action changed nothing, so its compensation must do nothing.
  if (!status.ok()) barrier_.erase(action);
  return status;
}

grpc::Status Shop::CreateOrder(const busi::OrderRequest& r, std::string* note) {
  orders_[r.order_id()] = Order{r, "created"};
  *note = absl::StrCat("order ", r.order_id(), " created: ", r.quantity(),
                       " x ", r.sku(), " for ", r.user());
  return grpc::Status::OK;
}

grpc::Status Shop::CancelOrder(const busi::OrderRequest& r, std::string* note) {
  orders_[r.order_id()].status = "cancelled";
  *note = absl::StrCat("order ", r.order_id(), " cancelled");
  return grpc::Status::OK;
}

grpc::Status Shop::DeductStock(const busi::OrderRequest& r, std::string* note) {
  int64_t& stock = Stock(r.sku());
  if (stock < r.quantity()) {
    *note = absl::StrCat("stock of ", r.sku(), " is ", stock);
    return grpc::Status(grpc::StatusCode::ABORTED, "insufficient stock");
  }
  *note = absl::StrCat("stock of ", r.sku(), ": ", stock, " -> ",
                       stock - r.quantity());
  stock -= r.quantity();
  return grpc::Status::OK;
}

grpc::Status Shop::RestoreStock(const busi::OrderRequest& r,
                                std::string* note) {
  int64_t& stock = Stock(r.sku());
  *note = absl::StrCat("stock of ", r.sku(), ": ", stock, " -> ",
                       stock + r.quantity());
  stock += r.quantity();
  return grpc::Status::OK;
}

grpc::Status Shop::Charge(const busi::OrderRequest& r, std::string* note) {
  int64_t& balance = Balance(r.user());
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

grpc::Status Shop::Refund(const busi::OrderRequest& r, std::string* note) {
  int64_t& balance = Balance(r.user());
  *note = absl::StrCat("balance of ", r.user(), ": ", balance, " -> ",
                       balance + r.amount());
  balance += r.amount();
  return grpc::Status::OK;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    default:
      return "ERROR";
  }
}

std::string Metadata(const grpc::GenericCallbackServerContext& ctx,
                     const std::string& key) {
  auto it = ctx.client_metadata().find(key);
  if (it == ctx.client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

// One unary call: read the request, let the shop handle it, reply. The shop
// only touches memory, so handling inline does not block the gRPC thread for
// long. Deletes itself when done.
class CallReactor final : public grpc::ServerGenericBidiReactor {
 public:
  CallReactor(Shop* shop, grpc::GenericCallbackServerContext* ctx)
      : shop_(shop), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      return;
    }
    BranchCall call{ctx_->method(), Metadata(*ctx_, "dtm-gid"),
                    Metadata(*ctx_, "dtm-branch_id"),
                    Metadata(*ctx_, "dtm-op")};
    std::string note;
    grpc::Status status = shop_->Handle(call, Payload(), &note);

    std::string line =
        absl::StrCat(call.method, " gid=", call.gid, " branch=", call.branch_id,
                     " op=", call.op, " -> ", CodeName(status.error_code()));
    if (!status.ok()) {
      absl::StrAppend(&line, " \"", status.error_message(), "\"");
    }
    if (!note.empty()) absl::StrAppend(&line, " (", note, ")");
    std::printf("%s\n", line.c_str());

    if (status.ok()) {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
    } else {
      Finish(status);
    }
  }

  void OnDone() override { delete this; }

 private:
  std::string Payload() {
    std::string payload;
    std::vector<grpc::Slice> slices;
    if (request_.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        payload.append(reinterpret_cast<const char*>(slice.begin()),
                       slice.size());
      }
    }
    return payload;
  }

  Shop* const shop_;
  grpc::GenericCallbackServerContext* const ctx_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_{nullptr, 0};  // An empty message.
};

class BusiService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    return new CallReactor(&shop_, ctx);
  }

 private:
  Shop shop_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // One line per call, promptly.

  const std::string address = absl::StrCat(absl::GetFlag(FLAGS_listen_address),
                                           ":", absl::GetFlag(FLAGS_port));
  BusiService service;
  int bound_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::fprintf(stderr, "busi_server: cannot listen on %s\n", address.c_str());
    return 1;
  }
  std::printf("busi_server listening on %s\n", address.c_str());
  server->Wait();
  return 0;
}
