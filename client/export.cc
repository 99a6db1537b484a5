#include "client/export.h"

#include <set>

#include "client/format.h"
#include "client/views.h"
#include "common/value.h"

namespace sweep::client {

std::string ExportTrialsCsv(const std::vector<v1::Trial>& trials) {
  std::set<std::string> param_names;
  std::set<std::string> metric_names;
  for (const auto& trial : trials) {
    for (const auto& param : trial.params()) param_names.insert(param.name());
    for (const auto& metric : trial.metrics()) metric_names.insert(metric.name());
  }

  std::vector<std::string> header = {"trial_id", "ordinal", "state", "attempt", "epoch"};
  header.insert(header.end(), param_names.begin(), param_names.end());
  header.insert(header.end(), metric_names.begin(), metric_names.end());
  header.emplace_back("failure_reason");
  std::string csv = CsvRecord(header);

  for (const auto& trial : trials) {
    std::vector<std::string> fields = {std::to_string(trial.id()), std::to_string(trial.ordinal()),
                                       std::string(TrialStateName(trial.state())),
                                       std::to_string(trial.attempt()),
                                       std::to_string(trial.epoch())};
    for (const auto& name : param_names) {
      std::string field;
      for (const auto& param : trial.params()) {
        if (param.name() == name) field = FormatParamValue(param.value());
      }
      fields.push_back(std::move(field));
    }
    for (const auto& name : metric_names) {
      std::optional<double> value = FindMetric(trial, name);
      fields.push_back(value.has_value() ? FormatDouble(*value) : "");
    }
    fields.push_back(trial.failure_reason());
    csv += CsvRecord(fields);
  }
  return csv;
}

nlohmann::json ExportTrialsJson(const std::vector<v1::Trial>& trials) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& trial : trials) array.push_back(TrialToJson(trial));
  return array;
}

std::string ExportMetricRowsCsv(const std::vector<TrialHistory>& histories) {
  std::string csv = CsvRecord({"trial_id", "attempt", "epoch", "step", "name", "value"});
  for (const auto& history : histories) {
    for (const auto& stored : history.rows) {
      csv += CsvRecord({std::to_string(history.trial_id), std::to_string(stored.attempt()),
                        std::to_string(stored.row().epoch()), std::to_string(stored.row().step()),
                        stored.row().name(), FormatDouble(stored.row().value())});
    }
  }
  return csv;
}

nlohmann::json ExportMetricRowsJson(const std::vector<TrialHistory>& histories) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& history : histories) {
    for (const auto& stored : history.rows) {
      array.push_back({{"trial_id", history.trial_id},
                       {"attempt", stored.attempt()},
                       {"epoch", stored.row().epoch()},
                       {"step", stored.row().step()},
                       {"name", stored.row().name()},
                       {"value", JsonNumber(stored.row().value())}});
    }
  }
  return array;
}

}  // namespace sweep::client
