#ifndef SWEEP_CLIENT_SUBMIT_VIEW_H_
#define SWEEP_CLIENT_SUBMIT_VIEW_H_

// What `sweep submit` and `sweep refine` print: the local dry-run sample and the summary
// of a stored sweep.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/value.h"
#include "nlohmann/json.hpp"

namespace sweep::client {

// A sample drawn locally, exactly as the coordinator would draw it for the same grid,
// grid size and seed.
struct DryRun {
  // Exact number of combinations in the grid, in decimal.
  std::string combination_count;
  int64_t grid_size = 0;
  uint64_t seed = 0;
  // The sampled trials in ordinal order.
  std::vector<Assignment> sample;
};

// Parses and validates the grid text with Grid::Parse and draws the sample with
// SampleCombinations. Returns INVALID_ARGUMENT for an invalid grid or a grid size below 1.
absl::StatusOr<DryRun> PlanDryRun(std::string_view grid_json, int64_t grid_size, uint64_t seed);

// The dry run for people: "combinations: N", "seed: S", then one line per trial,
// "trial K: name=value ...", with exact values.
std::string RenderDryRun(const DryRun& dry_run);

// The dry run as a JSON object: combination_count (a decimal string, because it can exceed
// 2^64), grid_size, seed, trial_count and trials, each with its ordinal and params.
nlohmann::json DryRunToJson(const DryRun& dry_run);

// Summary printed to stderr after a submit: the combination count, the number of trials
// stored (or sampled, for a dry run) and the seed. A second line follows when the grid size
// exceeds the combination count, because every combination is then taken once.
std::string RenderSubmitSummary(const std::string& combination_count, int64_t trial_count,
                                int64_t grid_size, uint64_t seed, bool dry_run);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_SUBMIT_VIEW_H_
