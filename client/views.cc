#include "client/views.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/format.h"
#include "common/value.h"

namespace sweep::client {
namespace {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// Renders "key  value" lines with the values aligned.
std::string RenderKeyValues(const KeyValues& entries) {
  size_t width = 0;
  for (const auto& [key, value] : entries) width = std::max(width, key.size());
  std::string text;
  for (const auto& [key, value] : entries) {
    absl::StrAppend(&text, key, std::string(width - key.size() + 2, ' '), value, "\n");
  }
  return text;
}

std::string IdOrDash(int64_t id) { return id == 0 ? "-" : std::to_string(id); }

std::string FormatMetrics(const v1::Trial& trial) {
  std::vector<std::string> pairs;
  for (const auto& metric : trial.metrics()) {
    pairs.push_back(absl::StrCat(metric.name(), "=", FormatDouble(metric.value())));
  }
  return pairs.empty() ? "-" : absl::StrJoin(pairs, " ");
}

std::set<std::string> ParamNames(const std::vector<v1::Trial>& trials) {
  std::set<std::string> names;
  for (const auto& trial : trials) {
    for (const auto& param : trial.params()) names.insert(param.name());
  }
  return names;
}

std::string ParamCell(const v1::Trial& trial, const std::string& name) {
  for (const auto& param : trial.params()) {
    if (param.name() == name) return FormatParamValue(param.value());
  }
  return "-";
}

// Last value of each metric in one (attempt, epoch) group of the history.
struct EpochRow {
  int64_t max_step = 0;
  std::map<std::string, double> last_values;
};

// The rule with its settings, or null when the sweep has none.
nlohmann::json StoppingRuleToJson(const v1::StoppingRule& rule) {
  switch (rule.rule_case()) {
    case v1::StoppingRule::kMedian:
      return {{"rule", "median"},
              {"grace_epochs", rule.median().grace_epochs()},
              {"min_trials", rule.median().min_trials()}};
    case v1::StoppingRule::kAsha:
      return {{"rule", "asha"},
              {"min_epochs", rule.asha().min_epochs()},
              {"reduction_factor", rule.asha().reduction_factor()},
              {"max_epochs", rule.asha().max_epochs()}};
    case v1::StoppingRule::RULE_NOT_SET:
      break;
  }
  return nullptr;
}

}  // namespace

nlohmann::json SweepToJson(const v1::Sweep& sweep) {
  nlohmann::json grid = nlohmann::json::parse(sweep.grid_json(), nullptr, false);
  if (grid.is_discarded()) grid = sweep.grid_json();
  return {
      {"id", sweep.id()},
      {"name", sweep.name()},
      {"state", SweepStateName(sweep.state())},
      {"grid", grid},
      {"grid_size", sweep.grid_size()},
      {"seed", sweep.seed()},
      {"combination_count", sweep.combination_count()},
      {"trial_count", sweep.trial_count()},
      {"counts", CountsToJson(sweep.counts())},
      {"created_unix_ms", sweep.created_unix_ms()},
      {"parent_sweep_id", sweep.parent_sweep_id() == 0 ? nlohmann::json(nullptr)
                                                       : nlohmann::json(sweep.parent_sweep_id())},
      {"stopping_rule", StoppingRuleToJson(sweep.stopping_rule())},
      {"max_concurrent_trials", sweep.max_concurrent_trials()},
  };
}

nlohmann::json TrialToJson(const v1::Trial& trial) {
  nlohmann::json params = nlohmann::json::object();
  for (const auto& param : trial.params()) params[param.name()] = ParamValueToJson(param.value());
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& metric : trial.metrics()) metrics[metric.name()] = JsonNumber(metric.value());
  return {
      {"id", trial.id()},
      {"sweep_id", trial.sweep_id()},
      {"ordinal", trial.ordinal()},
      {"state", TrialStateName(trial.state())},
      {"attempt", trial.attempt()},
      {"worker_id",
       trial.worker_id() == 0 ? nlohmann::json(nullptr) : nlohmann::json(trial.worker_id())},
      {"params", params},
      {"metrics", metrics},
      {"epoch", trial.epoch()},
      {"failure_reason", trial.failure_reason()},
      {"checkpoint_path", trial.checkpoint_path()},
      {"created_unix_ms", trial.created_unix_ms()},
      {"started_unix_ms", trial.started_unix_ms()},
      {"finished_unix_ms", trial.finished_unix_ms()},
  };
}

nlohmann::json StoredMetricToJson(const v1::StoredMetric& metric) {
  return {
      {"attempt", metric.attempt()},   {"seq", metric.row().seq()},
      {"epoch", metric.row().epoch()}, {"step", metric.row().step()},
      {"name", metric.row().name()},   {"value", JsonNumber(metric.row().value())},
  };
}

nlohmann::json WorkerToJson(const v1::Worker& worker, int64_t now_unix_ms) {
  return {
      {"id", worker.id()},
      {"host", worker.host()},
      {"device", worker.device()},
      {"current_trial_id", worker.current_trial_id() == 0
                               ? nlohmann::json(nullptr)
                               : nlohmann::json(worker.current_trial_id())},
      {"last_seen_unix_ms", worker.last_seen_unix_ms()},
      {"registered_unix_ms", worker.registered_unix_ms()},
      {"last_heartbeat_age_seconds", HeartbeatAgeSeconds(worker, now_unix_ms)},
  };
}

std::string RenderSweepList(const std::vector<v1::Sweep>& sweeps) {
  std::vector<std::string> header = {"id", "name", "state", "trials"};
  for (const auto& [state, count] : CountsByState(v1::StateCounts())) {
    header.emplace_back(state);
  }
  header.emplace_back("created");

  Table table(std::move(header));
  for (const auto& sweep : sweeps) {
    std::vector<std::string> row = {std::to_string(sweep.id()), sweep.name(),
                                    std::string(SweepStateName(sweep.state())),
                                    std::to_string(sweep.trial_count())};
    for (const auto& [state, count] : CountsByState(sweep.counts())) {
      row.push_back(std::to_string(count));
    }
    row.push_back(FormatUnixMillis(sweep.created_unix_ms()));
    table.AddRow(std::move(row));
  }
  return table.Render();
}

std::string DescribeStoppingRule(const v1::StoppingRule& rule) {
  switch (rule.rule_case()) {
    case v1::StoppingRule::kMedian:
      return absl::StrCat("median (grace epochs ", rule.median().grace_epochs(), ", min trials ",
                          rule.median().min_trials(), ")");
    case v1::StoppingRule::kAsha: {
      std::string text = absl::StrCat("asha (min epochs ", rule.asha().min_epochs(),
                                      ", reduction factor ", rule.asha().reduction_factor());
      if (rule.asha().max_epochs() > 0) {
        absl::StrAppend(&text, ", max epochs ", rule.asha().max_epochs());
      }
      return text + ")";
    }
    case v1::StoppingRule::RULE_NOT_SET:
      break;
  }
  return "none";
}

std::string RenderSweepDetail(const v1::Sweep& sweep) {
  KeyValues entries = {
      {"sweep", std::to_string(sweep.id())},
      {"name", sweep.name().empty() ? "-" : sweep.name()},
      {"state", std::string(SweepStateName(sweep.state()))},
      {"parent sweep", IdOrDash(sweep.parent_sweep_id())},
      {"created", FormatUnixMillis(sweep.created_unix_ms())},
      {"seed", std::to_string(sweep.seed())},
      {"grid size", std::to_string(sweep.grid_size())},
      {"combinations", sweep.combination_count()},
      {"trials", std::to_string(sweep.trial_count())},
      {"stopping", DescribeStoppingRule(sweep.stopping_rule())},
      {"max running",
       sweep.max_concurrent_trials() > 0 ? std::to_string(sweep.max_concurrent_trials()) : "-"},
  };
  for (const auto& [state, count] : CountsByState(sweep.counts())) {
    entries.emplace_back(std::string(state), std::to_string(count));
  }
  entries.emplace_back("grid", sweep.grid_json());
  return RenderKeyValues(entries);
}

std::string RenderTrialTable(const std::vector<v1::Trial>& trials, std::string_view sort_metric) {
  std::set<std::string> param_names = ParamNames(trials);
  std::vector<std::string> metric_names = {std::string(kValAccuracy), std::string(kTestAccuracy)};
  if (std::find(metric_names.begin(), metric_names.end(), sort_metric) == metric_names.end()) {
    metric_names.emplace_back(sort_metric);
  }

  std::vector<std::string> header = {"id", "state", "attempt"};
  header.insert(header.end(), param_names.begin(), param_names.end());
  header.insert(header.end(), metric_names.begin(), metric_names.end());
  header.emplace_back("epoch");
  header.emplace_back("failure");

  Table table(std::move(header));
  for (const auto& trial : trials) {
    std::vector<std::string> row = {std::to_string(trial.id()),
                                    std::string(TrialStateName(trial.state())),
                                    std::to_string(trial.attempt())};
    for (const auto& name : param_names) row.push_back(ParamCell(trial, name));
    for (const auto& name : metric_names) row.push_back(FormatMetricCell(FindMetric(trial, name)));
    row.push_back(std::to_string(trial.epoch()));
    row.push_back(TruncateForCell(trial.failure_reason(), kFailureReasonCellWidth));
    table.AddRow(std::move(row));
  }
  return table.Render();
}

std::string RenderTrialDetail(const v1::Trial& trial) {
  KeyValues entries = {
      {"trial", std::to_string(trial.id())},
      {"sweep", std::to_string(trial.sweep_id())},
      {"ordinal", std::to_string(trial.ordinal())},
      {"state", std::string(TrialStateName(trial.state()))},
      {"attempt", std::to_string(trial.attempt())},
      {"worker", IdOrDash(trial.worker_id())},
      {"created", FormatUnixMillis(trial.created_unix_ms())},
      {"started", FormatUnixMillis(trial.started_unix_ms())},
      {"finished", FormatUnixMillis(trial.finished_unix_ms())},
      {"epoch", std::to_string(trial.epoch())},
      {"params", trial.params().empty() ? "-" : FormatParams(trial.params())},
      {"metrics", FormatMetrics(trial)},
  };
  if (!trial.failure_reason().empty()) entries.emplace_back("failure", trial.failure_reason());
  if (!trial.checkpoint_path().empty()) {
    entries.emplace_back("checkpoint", trial.checkpoint_path());
  }
  return RenderKeyValues(entries);
}

std::string RenderMetricHistory(const StoredMetrics& history) {
  std::map<std::pair<int32_t, int32_t>, EpochRow> rows;
  std::set<std::string> metric_names;
  for (const auto& stored : history) {
    EpochRow& row = rows[{stored.attempt(), stored.row().epoch()}];
    row.max_step = std::max(row.max_step, stored.row().step());
    row.last_values[stored.row().name()] = stored.row().value();
    metric_names.insert(stored.row().name());
  }

  std::vector<std::string> header = {"attempt", "epoch", "step"};
  header.insert(header.end(), metric_names.begin(), metric_names.end());
  Table table(std::move(header));
  for (const auto& [key, row] : rows) {
    std::vector<std::string> cells = {std::to_string(key.first), std::to_string(key.second),
                                      std::to_string(row.max_step)};
    for (const auto& name : metric_names) {
      auto found = row.last_values.find(name);
      cells.push_back(found == row.last_values.end() ? "-" : FormatDouble(found->second));
    }
    table.AddRow(std::move(cells));
  }
  return table.Render();
}

double HeartbeatAgeSeconds(const v1::Worker& worker, int64_t now_unix_ms) {
  return std::max<int64_t>(0, now_unix_ms - worker.last_seen_unix_ms()) / 1000.0;
}

std::string RenderWorkers(const std::vector<v1::Worker>& workers, int64_t now_unix_ms) {
  Table table({"id", "host", "device", "current_trial", "last_heartbeat_s"});
  for (const auto& worker : workers) {
    table.AddRow({std::to_string(worker.id()), worker.host(), worker.device(),
                  IdOrDash(worker.current_trial_id()),
                  absl::StrFormat("%.1f", HeartbeatAgeSeconds(worker, now_unix_ms))});
  }
  return table.Render();
}

}  // namespace sweep::client
