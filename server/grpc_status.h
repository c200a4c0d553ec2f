// Conversion of absl::Status to grpc::Status at the service edge.
#ifndef DTMD_SERVER_GRPC_STATUS_H_
#define DTMD_SERVER_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace dtmd {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace dtmd

#endif  // DTMD_SERVER_GRPC_STATUS_H_
