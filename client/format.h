#ifndef SWEEP_CLIENT_FORMAT_H_
#define SWEEP_CLIENT_FORMAT_H_

// Formatting primitives of the `sweep` command: tables, CSV fields, JSON numbers, parameter
// values and state names. Nothing here talks to the coordinator, so tests call it directly.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/params_proto.h"
#include "common/value.h"
#include "nlohmann/json.hpp"
#include "sweep/v1/sweep.pb.h"

namespace sweep::client {

// A text table: a header row and data rows, printed with every column padded to its widest
// cell (counted in UTF-8 code points) and two spaces between columns.
class Table {
 public:
  explicit Table(std::vector<std::string> header);

  // Appends a row. A row shorter than the header is padded with empty cells; cells beyond
  // the header's width are dropped.
  void AddRow(std::vector<std::string> cells);

  size_t row_count() const { return rows_.size(); }

  // Renders the header and rows, one line each, every line ending in '\n' without trailing
  // spaces.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// Quotes one CSV field as RFC 4180 requires: a field that contains a comma, a double quote,
// CR or LF is wrapped in double quotes, with each inner double quote doubled.
std::string CsvField(std::string_view field);

// Joins fields into one CSV record ending in '\n'.
std::string CsvRecord(const std::vector<std::string>& fields);

// Converts a double to JSON: finite values as numbers, NaN and infinities as null because
// JSON has no literal for them.
nlohmann::json JsonNumber(double value);

// Serializes JSON for output, indented by `indent` spaces or on one line when `indent` is
// -1. Invalid UTF-8 in strings becomes U+FFFD instead of raising an exception.
std::string JsonText(const nlohmann::json& json, int indent);

// Formats a parameter value with exact digits (FormatDouble for doubles); an unset value
// prints as an empty string.
std::string FormatParamValue(const v1::ParamValue& value);

// A parameter value as JSON; an unset value is null.
nlohmann::json ParamValueToJson(const v1::ParamValue& value);

// Parameters as "name=value" pairs separated by spaces.
std::string FormatParams(const ProtoParams& params);
std::string FormatAssignment(const Assignment& assignment);

// Lower-case state names ("pending", "completed", ...); "unspecified" for the zero value.
std::string_view TrialStateName(v1::TrialState state);
std::string_view SweepStateName(v1::SweepState state);

// Parses a trial state name, case-insensitively: "completed" or "TRIAL_STATE_COMPLETED".
// Returns INVALID_ARGUMENT naming the accepted names for anything else.
absl::StatusOr<v1::TrialState> ParseTrialState(std::string_view name);

// Trial counts as (state name, count) pairs in the order pending, running, completed,
// failed, cancelled, stopped.
std::vector<std::pair<std::string, int64_t>> CountsByState(const v1::StateCounts& counts);

// Counts as "pending 2, running 1, ..." for one-line summaries.
std::string FormatCounts(const v1::StateCounts& counts);

// Counts as a JSON object keyed by state name.
nlohmann::json CountsToJson(const v1::StateCounts& counts);

// Value of the trial's metric `name`, or nullopt when the trial has none. When the name
// repeats, the last entry wins.
std::optional<double> FindMetric(const v1::Trial& trial, std::string_view name);

// A metric for a table cell: exact digits, or "-" when the metric is missing.
std::string FormatMetricCell(std::optional<double> value);

// Sorts trials by `metric`, highest first. Trials whose value is missing, NaN or infinite
// go last, so they never rank best. The sort is stable: equal trials keep their order.
void SortTrialsBestFirst(std::vector<v1::Trial>& trials, std::string_view metric);

// Shortens text to at most `max_chars` code points, ending in "..." when it was cut. Line
// breaks and tabs become spaces so that a table row stays on one line.
std::string TruncateForCell(std::string_view text, size_t max_chars);

// Formats Unix milliseconds as UTC ISO 8601 ("2024-05-01T12:00:00.123Z"); 0 prints as "-".
std::string FormatUnixMillis(int64_t unix_ms);

// Formats a non-negative duration rounded to whole seconds: "45s", "3m05s", "2h03m05s".
std::string FormatDuration(double seconds);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_FORMAT_H_
