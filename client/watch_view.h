#ifndef SWEEP_CLIENT_WATCH_VIEW_H_
#define SWEEP_CLIENT_WATCH_VIEW_H_

// What `sweep watch` prints for each WatchSweep event: a block redrawn in place on a
// terminal, one plain line otherwise, or one JSON object per line.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "sweep/v1/sweep.pb.h"

namespace sweep::client {

// Metric names the worker reports and the watch view shows.
inline constexpr char kImagesPerSecond[] = "images_per_second";
inline constexpr char kEpochSeconds[] = "epoch_seconds";
inline constexpr char kStep[] = "step";

// Number of epochs the trial trains for: its num_epochs parameter, else the trainer's
// default.
int64_t PlannedEpochs(const v1::Trial& trial);

// A bar of `width` cells between brackets, the first fraction * width of them filled with
// '#' and the rest with '-'; the fraction is clamped to [0, 1].
std::string RenderProgressBar(double fraction, size_t width);

// Seconds until the trial finishes: the latest epoch_seconds times the epochs left after
// the trial's current epoch. Returns nullopt without a finite, non-negative epoch_seconds.
std::optional<double> EstimateSecondsLeft(const v1::Trial& trial);

// One line for a running trial: progress bar with "epoch k/n", step, latest val_accuracy,
// images per second and ETA. Missing metrics print as "-".
std::string RenderRunningTrial(const v1::Trial& trial);

// "best: trial T val_accuracy V (name=value ...)", or "best: none yet" when the event has
// none.
std::string RenderBest(const v1::WatchSweepEvent& event);

// The block shown on a terminal: a header with the sweep's state and counts, one line per
// running trial and the best trial. When `max_width` is above 0, each line is cut to fewer
// than `max_width` code points so that no line wraps and the redraw stays aligned.
std::vector<std::string> RenderWatchBlock(const v1::WatchSweepEvent& event, size_t max_width);

// One plain line per event for non-terminals: state, counts and the best trial.
std::string RenderWatchLine(const v1::WatchSweepEvent& event);

// One event as a JSON object: sweep, running trials and best (null when none).
nlohmann::json WatchEventToJson(const v1::WatchSweepEvent& event);

// ANSI sequence that moves the cursor to the first of the `line_count` lines printed last
// and clears from there to the end of the screen. Empty when `line_count` is 0.
std::string ClearPreviousBlock(size_t line_count);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_WATCH_VIEW_H_
