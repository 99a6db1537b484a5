#include "client/watch_view.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "client/format.h"
#include "client/views.h"
#include "common/hyperparameters.h"
#include "common/value.h"

namespace sweep::client {
namespace {

constexpr size_t kProgressBarWidth = 20;

bool HasBest(const v1::WatchSweepEvent& event) {
  return event.has_best() && event.best().id() != 0;
}

std::string RenderSweepHeader(const v1::Sweep& sweep) {
  std::string name = sweep.name().empty() ? "" : absl::StrCat(" \"", sweep.name(), "\"");
  return absl::StrCat("sweep ", sweep.id(), name, " ", std::string(SweepStateName(sweep.state())),
                      ": ", FormatCounts(sweep.counts()));
}

}  // namespace

int64_t PlannedEpochs(const v1::Trial& trial) {
  for (const auto& param : trial.params()) {
    if (param.name() == "num_epochs" && param.value().has_int_value()) {
      return param.value().int_value();
    }
  }
  return Hyperparameters().num_epochs;
}

std::string RenderProgressBar(double fraction, size_t width) {
  if (!std::isfinite(fraction)) fraction = 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  size_t filled = static_cast<size_t>(std::floor(fraction * static_cast<double>(width)));
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'), "]");
}

// NOTE: this treats Trial.epoch as the number of the latest epoch with stored metrics,
// counted from 1, and assumes epoch_seconds arrives when that epoch ends. If the worker
// numbers epochs from 0, progress and ETA lag by one epoch.
std::optional<double> EstimateSecondsLeft(const v1::Trial& trial) {
  std::optional<double> epoch_seconds = FindMetric(trial, kEpochSeconds);
  if (!epoch_seconds.has_value() || !std::isfinite(*epoch_seconds) || *epoch_seconds < 0) {
    return std::nullopt;
  }
  int64_t epochs_left = std::max<int64_t>(0, PlannedEpochs(trial) - trial.epoch());
  return *epoch_seconds * static_cast<double>(epochs_left);
}

std::string RenderRunningTrial(const v1::Trial& trial) {
  int64_t planned = PlannedEpochs(trial);
  double fraction = planned > 0 ? static_cast<double>(trial.epoch()) / planned : 0;
  std::optional<double> seconds_left = EstimateSecondsLeft(trial);
  // NOTE: Trial carries no step field, so the step shows only when the worker reports a
  // metric named "step".
  return absl::StrCat("trial ", trial.id(), " ", RenderProgressBar(fraction, kProgressBarWidth),
                      " epoch ", trial.epoch(), "/", planned, " step ",
                      FormatMetricCell(FindMetric(trial, kStep)), " ", kValAccuracy, " ",
                      FormatMetricCell(FindMetric(trial, kValAccuracy)), " ", kImagesPerSecond, " ",
                      FormatMetricCell(FindMetric(trial, kImagesPerSecond)), " ETA ",
                      seconds_left.has_value() ? FormatDuration(*seconds_left) : "-");
}

std::string RenderBest(const v1::WatchSweepEvent& event) {
  if (!HasBest(event)) return "best: none yet";
  const v1::Trial& best = event.best();
  std::string line = absl::StrCat("best: trial ", best.id(), " ", kValAccuracy, " ",
                                  FormatMetricCell(FindMetric(best, kValAccuracy)));
  if (!best.params().empty()) absl::StrAppend(&line, " (", FormatParams(best.params()), ")");
  return line;
}

std::vector<std::string> RenderWatchBlock(const v1::WatchSweepEvent& event, size_t max_width) {
  std::vector<std::string> lines = {RenderSweepHeader(event.sweep())};
  for (const auto& trial : event.running()) lines.push_back(RenderRunningTrial(trial));
  lines.push_back(RenderBest(event));
  if (max_width > 0) {
    for (auto& line : lines) line = TruncateForCell(line, max_width - 1);
  }
  return lines;
}

std::string RenderWatchLine(const v1::WatchSweepEvent& event) {
  std::string line = absl::StrCat(RenderSweepHeader(event.sweep()), "; ", RenderBest(event));
  for (const v1::Trial& trial : event.running()) {
    absl::StrAppend(&line, "; trial ", trial.id(), " at epoch ", trial.epoch(), "/",
                    PlannedEpochs(trial));
  }
  return line;
}

nlohmann::json WatchEventToJson(const v1::WatchSweepEvent& event) {
  nlohmann::json running = nlohmann::json::array();
  for (const auto& trial : event.running()) running.push_back(TrialToJson(trial));
  return {{"sweep", SweepToJson(event.sweep())},
          {"running", running},
          {"best", HasBest(event) ? TrialToJson(event.best()) : nlohmann::json(nullptr)}};
}

std::string ClearPreviousBlock(size_t line_count) {
  if (line_count == 0) return "";
  // CSI n F moves to the start of the line n lines up; CSI J clears to the end of screen.
  return absl::StrCat("\x1b[", line_count, "F\x1b[J");
}

}  // namespace sweep::client
