#include "common/params_proto.h"

#include <algorithm>

#include "nlohmann/json.hpp"

namespace sweep {

absl::StatusOr<Assignment> AssignmentFromJson(std::string_view json_text) {
  nlohmann::json object = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) {
    return absl::InvalidArgumentError("parameters \"" + std::string(json_text) +
                                      "\" are not a JSON object");
  }
  Assignment assignment;
  for (const auto& [name, value] : object.items()) {
    if (value.is_number_integer()) {
      assignment.emplace_back(name, value.get<int64_t>());
    } else if (value.is_number_float()) {
      assignment.emplace_back(name, value.get<double>());
    } else if (value.is_string()) {
      assignment.emplace_back(name, value.get<std::string>());
    } else if (value.is_boolean()) {
      assignment.emplace_back(name, value.get<bool>());
    } else {
      return absl::InvalidArgumentError("parameter \"" + name + "\" has the non-scalar value " +
                                        value.dump());
    }
  }
  return assignment;
}

v1::ParamValue ValueToProto(const Value& value) {
  v1::ParamValue proto;
  if (const auto* i = std::get_if<int64_t>(&value)) {
    proto.set_int_value(*i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    proto.set_double_value(*d);
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    proto.set_string_value(*s);
  } else {
    proto.set_bool_value(std::get<bool>(value));
  }
  return proto;
}

ProtoParams AssignmentToProto(const Assignment& assignment) {
  ProtoParams params;
  for (const auto& [name, value] : assignment) {
    v1::Param* param = params.Add();
    param->set_name(name);
    *param->mutable_value() = ValueToProto(value);
  }
  return params;
}

absl::StatusOr<Assignment> AssignmentFromProto(const ProtoParams& params) {
  Assignment assignment;
  for (const v1::Param& param : params) {
    switch (param.value().kind_case()) {
      case v1::ParamValue::kIntValue:
        assignment.emplace_back(param.name(), param.value().int_value());
        break;
      case v1::ParamValue::kDoubleValue:
        assignment.emplace_back(param.name(), param.value().double_value());
        break;
      case v1::ParamValue::kStringValue:
        assignment.emplace_back(param.name(), param.value().string_value());
        break;
      case v1::ParamValue::kBoolValue:
        assignment.emplace_back(param.name(), param.value().bool_value());
        break;
      default:
        return absl::InvalidArgumentError("parameter \"" + param.name() + "\" has no value");
    }
  }
  std::sort(assignment.begin(), assignment.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return assignment;
}

}  // namespace sweep
