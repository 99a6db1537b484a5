#ifndef SWEEP_CLIENT_EXPORT_H_
#define SWEEP_CLIENT_EXPORT_H_

// CSV and JSON documents written by `sweep export`. Pure functions of their arguments.

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "sweep/v1/sweep.pb.h"

namespace sweep::client {

// Final parameters and metrics per trial as CSV with the columns trial_id, ordinal, state,
// attempt, epoch, one per parameter name, one per metric name (both sorted by name) and
// failure_reason. A missing value is an empty field; NaN and infinities print as nan, inf
// and -inf; other numbers print with exact digits.
std::string ExportTrialsCsv(const std::vector<v1::Trial>& trials);

// The same trials as a JSON array of trial objects (NaN and infinities as null).
nlohmann::json ExportTrialsJson(const std::vector<v1::Trial>& trials);

// The metric history of one trial, as GetTrial returns it.
struct TrialHistory {
  int64_t trial_id = 0;
  google::protobuf::RepeatedPtrField<v1::StoredMetric> rows;
};

// Every metric row as CSV with the columns trial_id, attempt, epoch, step, name, value.
std::string ExportMetricRowsCsv(const std::vector<TrialHistory>& histories);

// Every metric row as a JSON array of objects with the same fields as the CSV columns.
nlohmann::json ExportMetricRowsJson(const std::vector<TrialHistory>& histories);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_EXPORT_H_
