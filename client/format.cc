#include "client/format.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace sweep::client {
namespace {

// Number of UTF-8 code points: every byte except continuation bytes (10xxxxxx) starts one.
size_t CodePointCount(std::string_view text) {
  return std::count_if(text.begin(), text.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

void AppendPadded(std::string& line, std::string_view cell, size_t width) {
  line.append(cell);
  line.append(width - std::min(width, CodePointCount(cell)), ' ');
}

struct TrialStateEntry {
  v1::TrialState state;
  std::string_view name;
};

constexpr TrialStateEntry kTrialStates[] = {
    {v1::TRIAL_STATE_PENDING, "pending"},     {v1::TRIAL_STATE_RUNNING, "running"},
    {v1::TRIAL_STATE_COMPLETED, "completed"}, {v1::TRIAL_STATE_FAILED, "failed"},
    {v1::TRIAL_STATE_CANCELLED, "cancelled"}, {v1::TRIAL_STATE_STOPPED, "stopped"},
};

}  // namespace

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(header_.size());
  for (size_t column = 0; column < header_.size(); ++column) {
    widths[column] = CodePointCount(header_[column]);
    for (const auto& row : rows_) {
      widths[column] = std::max(widths[column], CodePointCount(row[column]));
    }
  }

  std::string text;
  auto append_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t column = 0; column < cells.size(); ++column) {
      if (column > 0) line.append("  ");
      AppendPadded(line, cells[column], widths[column]);
    }
    line.erase(line.find_last_not_of(' ') + 1);
    text.append(line).append("\n");
  };
  append_line(header_);
  for (const auto& row : rows_) append_line(row);
  return text;
}

std::string CsvField(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string quoted = "\"";
  for (char c : field) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

std::string CsvRecord(const std::vector<std::string>& fields) {
  std::string record;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) record.push_back(',');
    record.append(CsvField(fields[i]));
  }
  record.push_back('\n');
  return record;
}

nlohmann::json JsonNumber(double value) {
  if (!std::isfinite(value)) return nullptr;
  return value;
}

std::string JsonText(const nlohmann::json& json, int indent) {
  return json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FormatParamValue(const v1::ParamValue& value) {
  switch (value.kind_case()) {
    case v1::ParamValue::kIntValue:
      return std::to_string(value.int_value());
    case v1::ParamValue::kDoubleValue:
      return FormatDouble(value.double_value());
    case v1::ParamValue::kStringValue:
      return value.string_value();
    case v1::ParamValue::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case v1::ParamValue::KIND_NOT_SET:
      break;
  }
  return "";
}

nlohmann::json ParamValueToJson(const v1::ParamValue& value) {
  switch (value.kind_case()) {
    case v1::ParamValue::kIntValue:
      return value.int_value();
    case v1::ParamValue::kDoubleValue:
      return JsonNumber(value.double_value());
    case v1::ParamValue::kStringValue:
      return value.string_value();
    case v1::ParamValue::kBoolValue:
      return value.bool_value();
    case v1::ParamValue::KIND_NOT_SET:
      break;
  }
  return nullptr;
}

std::string FormatParams(const ProtoParams& params) {
  std::vector<std::string> pairs;
  for (const auto& param : params) {
    pairs.push_back(absl::StrCat(param.name(), "=", FormatParamValue(param.value())));
  }
  return absl::StrJoin(pairs, " ");
}

std::string FormatAssignment(const Assignment& assignment) {
  std::vector<std::string> pairs;
  for (const auto& [name, value] : assignment) {
    pairs.push_back(absl::StrCat(name, "=", FormatValue(value)));
  }
  return absl::StrJoin(pairs, " ");
}

std::string_view TrialStateName(v1::TrialState state) {
  for (const auto& entry : kTrialStates) {
    if (entry.state == state) return entry.name;
  }
  return "unspecified";
}

std::string_view SweepStateName(v1::SweepState state) {
  switch (state) {
    case v1::SWEEP_STATE_RUNNING:
      return "running";
    case v1::SWEEP_STATE_COMPLETED:
      return "completed";
    case v1::SWEEP_STATE_FAILED:
      return "failed";
    case v1::SWEEP_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

absl::StatusOr<v1::TrialState> ParseTrialState(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(std::string(name));
  constexpr std::string_view kEnumPrefix = "trial_state_";
  if (lower.starts_with(kEnumPrefix)) lower.erase(0, kEnumPrefix.size());
  std::vector<std::string> names;
  for (const auto& entry : kTrialStates) {
    if (entry.name == lower) return entry.state;
    names.emplace_back(entry.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("trial state \"", std::string(name),
                                                 "\" is not valid: use one of ",
                                                 absl::StrJoin(names, ", ")));
}

std::vector<std::pair<std::string, int64_t>> CountsByState(const v1::StateCounts& counts) {
  return {{"pending", counts.pending()},     {"running", counts.running()},
          {"completed", counts.completed()}, {"failed", counts.failed()},
          {"cancelled", counts.cancelled()}, {"stopped", counts.stopped()}};
}

std::string FormatCounts(const v1::StateCounts& counts) {
  std::vector<std::string> parts;
  for (const auto& [name, count] : CountsByState(counts)) {
    parts.push_back(absl::StrCat(name, " ", count));
  }
  return absl::StrJoin(parts, ", ");
}

nlohmann::json CountsToJson(const v1::StateCounts& counts) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [name, count] : CountsByState(counts)) object[name] = count;
  return object;
}

std::optional<double> FindMetric(const v1::Trial& trial, std::string_view name) {
  std::optional<double> found;
  for (const auto& metric : trial.metrics()) {
    if (metric.name() == name) found = metric.value();
  }
  return found;
}

std::string FormatMetricCell(std::optional<double> value) {
  return value.has_value() ? FormatDouble(*value) : "-";
}

void SortTrialsBestFirst(std::vector<v1::Trial>& trials, std::string_view metric) {
  auto rank_key = [metric](const v1::Trial& trial) -> std::optional<double> {
    std::optional<double> value = FindMetric(trial, metric);
    if (value.has_value() && std::isfinite(*value)) return value;
    return std::nullopt;
  };
  std::stable_sort(trials.begin(), trials.end(), [&](const v1::Trial& a, const v1::Trial& b) {
    std::optional<double> key_a = rank_key(a);
    std::optional<double> key_b = rank_key(b);
    if (!key_b.has_value()) return key_a.has_value();
    return key_a.has_value() && *key_a > *key_b;
  });
}

std::string TruncateForCell(std::string_view text, size_t max_chars) {
  std::string flat(text);
  std::replace_if(
      flat.begin(), flat.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  if (CodePointCount(flat) <= max_chars) return flat;

  constexpr std::string_view kEllipsis = "...";
  size_t keep = max_chars > kEllipsis.size() ? max_chars - kEllipsis.size() : 0;
  size_t end = 0;
  for (size_t kept = 0; end < flat.size(); ++end) {
    bool starts_code_point = (static_cast<unsigned char>(flat[end]) & 0xC0) != 0x80;
    if (starts_code_point && kept++ == keep) break;
  }
  return flat.substr(0, end) + std::string(kEllipsis.substr(0, max_chars - keep));
}

std::string FormatUnixMillis(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  int64_t millis = unix_ms % 1000;
  if (millis < 0) {
    seconds -= 1;
    millis += 1000;
  }
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &utc);
  return absl::StrFormat("%s.%03dZ", date, millis);
}

std::string FormatDuration(double seconds) {
  // Beyond 1e15 s the rounded value no longer fits the arithmetic below.
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e15) return "-";
  int64_t total = std::llround(seconds);
  int64_t hours = total / 3600;
  int64_t minutes = total / 60 % 60;
  int64_t secs = total % 60;
  if (hours > 0) return absl::StrFormat("%dh%02dm%02ds", hours, minutes, secs);
  if (minutes > 0) return absl::StrFormat("%dm%02ds", minutes, secs);
  return absl::StrFormat("%ds", secs);
}

}  // namespace sweep::client
