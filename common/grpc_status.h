#ifndef SWEEP_COMMON_GRPC_STATUS_H_
#define SWEEP_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace sweep {

// Converts between absl::Status and grpc::Status; the codes map one to one.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace sweep

#endif  // SWEEP_COMMON_GRPC_STATUS_H_
