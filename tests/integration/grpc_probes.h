// Probes of the standard gRPC services dtmd serves besides its own: health
// checking (grpc.health.v1.Health) and server reflection
// (grpc.reflection.v1alpha.ServerReflection). Both are spoken as raw calls so
// that the tests need neither service's generated stubs.
#ifndef DTMD_TESTS_INTEGRATION_GRPC_PROBES_H_
#define DTMD_TESTS_INTEGRATION_GRPC_PROBES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/grpcpp.h"

namespace dtmd::testing {

// grpc.health.v1.Health/Check for the whole server (empty service name), with
// a 5 s deadline. The call's error if it fails.
absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
CheckHealth(const std::shared_ptr<grpc::Channel>& channel);

// The fully qualified names of the services the server lists through
// reflection, in the order it lists them. The call's error if it fails, or the
// reflection service's error response.
absl::StatusOr<std::vector<std::string>> ListServicesByReflection(
    const std::shared_ptr<grpc::Channel>& channel);

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_GRPC_PROBES_H_
