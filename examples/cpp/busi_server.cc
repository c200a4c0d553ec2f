// busi_server: the quick start's business service.
//
// Serves the shop of shop.h (sagas, TCC and msg branches) as the busi.Busi
// methods of busi.proto, with a generic handler: dtmd sends each branch's
// payload as raw bytes and never needs the generated service. Prints one line
// per call: method, DTM metadata, answer and what the shop did.
//
// Usage: busi_server [--port=36791] [--listen_address=localhost]
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "shop.h"

ABSL_FLAG(int, port, 36791, "gRPC port to listen on");
ABSL_FLAG(std::string, listen_address, "localhost",
          "host or IP address to listen on");

namespace {

using busi::BranchCall;
using busi::Shop;

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
