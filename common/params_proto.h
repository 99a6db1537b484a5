#ifndef SWEEP_COMMON_PARAMS_PROTO_H_
#define SWEEP_COMMON_PARAMS_PROTO_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/value.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep {

using ProtoParams = google::protobuf::RepeatedPtrField<v1::Param>;

// Parses a canonical assignment JSON object (integers stay integers, floats stay
// doubles) into an assignment sorted by name.
absl::StatusOr<Assignment> AssignmentFromJson(std::string_view json_text);

ProtoParams AssignmentToProto(const Assignment& assignment);
absl::StatusOr<Assignment> AssignmentFromProto(const ProtoParams& params);

v1::ParamValue ValueToProto(const Value& value);

}  // namespace sweep

#endif  // SWEEP_COMMON_PARAMS_PROTO_H_
