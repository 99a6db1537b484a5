#include "client/submit_view.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/format.h"
#include "common/search_space.h"

namespace sweep::client {

absl::StatusOr<DryRun> PlanDryRun(std::string_view grid_json, int64_t grid_size, uint64_t seed) {
  if (grid_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid size ", grid_size, " is not positive: pass --grid-size 1 or more"));
  }
  absl::StatusOr<Grid> grid = Grid::Parse(grid_json);
  if (!grid.ok()) return grid.status();
  absl::StatusOr<std::vector<Assignment>> sample = SampleCombinations(*grid, grid_size, seed);
  if (!sample.ok()) return sample.status();

  DryRun dry_run;
  dry_run.combination_count = grid->CombinationCountDecimal();
  dry_run.grid_size = grid_size;
  dry_run.seed = seed;
  dry_run.sample = *std::move(sample);
  return dry_run;
}

std::string RenderDryRun(const DryRun& dry_run) {
  std::string text =
      absl::StrCat("combinations: ", dry_run.combination_count, "\n", "seed: ", dry_run.seed, "\n");
  for (size_t ordinal = 0; ordinal < dry_run.sample.size(); ++ordinal) {
    absl::StrAppend(&text, "trial ", ordinal, ": ", FormatAssignment(dry_run.sample[ordinal]),
                    "\n");
  }
  return text;
}

nlohmann::json DryRunToJson(const DryRun& dry_run) {
  nlohmann::json trials = nlohmann::json::array();
  for (size_t ordinal = 0; ordinal < dry_run.sample.size(); ++ordinal) {
    nlohmann::json params = nlohmann::json::object();
    for (const auto& [name, value] : dry_run.sample[ordinal]) {
      const double* number = std::get_if<double>(&value);
      params[name] = number != nullptr ? JsonNumber(*number) : ValueToJson(value);
    }
    trials.push_back({{"ordinal", ordinal}, {"params", params}});
  }
  return {{"combination_count", dry_run.combination_count},
          {"grid_size", dry_run.grid_size},
          {"seed", dry_run.seed},
          {"trial_count", dry_run.sample.size()},
          {"trials", trials}};
}

std::string RenderSubmitSummary(const std::string& combination_count, int64_t trial_count,
                                int64_t grid_size, uint64_t seed, bool dry_run) {
  std::string text =
      absl::StrCat(combination_count, " combinations, ", trial_count,
                   dry_run ? " trials sampled (dry run, nothing stored)" : " trials stored",
                   ", seed ", seed, "\n");
  // The coordinator stores min(grid_size, combination count) trials, so fewer trials than
  // the grid size means the grid size exceeds the combination count.
  if (trial_count < grid_size) {
    absl::StrAppend(&text, "grid size ", grid_size, " exceeds the ", combination_count,
                    " combinations, so every combination is taken once\n");
  }
  return text;
}

}  // namespace sweep::client
