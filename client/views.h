#ifndef SWEEP_CLIENT_VIEWS_H_
#define SWEEP_CLIENT_VIEWS_H_

// Text and JSON views of the coordinator's replies for the read commands (status, trials,
// best, trial, workers). Pure functions of their arguments.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "sweep/v1/sweep.pb.h"

namespace sweep::client {

using StoredMetrics = google::protobuf::RepeatedPtrField<v1::StoredMetric>;

// Metric columns shown for every trial, in this order.
inline constexpr char kValAccuracy[] = "val_accuracy";
inline constexpr char kTestAccuracy[] = "test_accuracy";

// Maximum length, in code points, of the failure reason in a trial table; longer reasons
// are cut.
inline constexpr size_t kFailureReasonCellWidth = 40;

// JSON objects for the coordinator's messages. NaN and infinite metrics become null, the
// combination count stays a decimal string because it can exceed 2^64, and the grid is
// embedded as a JSON object.
nlohmann::json SweepToJson(const v1::Sweep& sweep);
nlohmann::json TrialToJson(const v1::Trial& trial);
nlohmann::json StoredMetricToJson(const v1::StoredMetric& metric);
nlohmann::json WorkerToJson(const v1::Worker& worker, int64_t now_unix_ms);

// A table of sweeps: id, name, state, trial count, counts by state and creation time.
std::string RenderSweepList(const std::vector<v1::Sweep>& sweeps);

// Describes a sweep's stopping rule with its settings, or "none".
std::string DescribeStoppingRule(const v1::StoppingRule& rule);

// One sweep as "key  value" lines, including its grid.
std::string RenderSweepDetail(const v1::Sweep& sweep);

// A table of trials in the given order: id, state, attempt, one column per parameter name
// any trial has, val_accuracy, test_accuracy, `sort_metric` when it is another metric,
// epoch and the failure reason cut to kFailureReasonCellWidth.
std::string RenderTrialTable(const std::vector<v1::Trial>& trials, std::string_view sort_metric);

// One trial as "key  value" lines: ids, state, attempt, times, parameters and metrics.
std::string RenderTrialDetail(const v1::Trial& trial);

// Metric history as a table with one row per (attempt, epoch) and one column per metric
// name. A metric reported several times in an epoch shows its last value, and the step
// column shows the highest step of the epoch.
std::string RenderMetricHistory(const StoredMetrics& history);

// A table of workers: id, host, device, current trial and the age of the last heartbeat
// in seconds relative to `now_unix_ms`.
std::string RenderWorkers(const std::vector<v1::Worker>& workers, int64_t now_unix_ms);

// Seconds since the worker's last heartbeat, never negative.
double HeartbeatAgeSeconds(const v1::Worker& worker, int64_t now_unix_ms);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_VIEWS_H_
