// libFuzzer entry point for Grid::Parse, built and run by run-grid-fuzzer.sh. Besides
// crashes and sanitizer reports, it traps when an accepted grid breaks an invariant. The
// canonical JSON must parse back to the same grid. A sample must contain distinct
// combinations, and with hyperparameter checks each must build valid hyperparameters.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/hyperparameters.h"
#include "common/search_space.h"

namespace {

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void CheckAcceptedGrid(const sweep::Grid& grid, sweep::GridOptions options, uint64_t seed) {
  const absl::StatusOr<sweep::Grid> reparsed = sweep::Grid::Parse(grid.CanonicalJson(), options);
  Check(reparsed.ok());
  Check(*reparsed == grid);
  Check(!grid.CombinationCountDecimal().empty());

  constexpr int64_t kSampleSize = 8;
  const absl::StatusOr<std::vector<sweep::Assignment>> sample =
      sweep::SampleCombinations(grid, kSampleSize, seed);
  Check(sample.ok());
  Check(static_cast<int64_t>(sample->size()) == grid.CombinationCountCapped(kSampleSize));
  std::set<std::string> distinct;
  for (const sweep::Assignment& assignment : *sample) {
    Check(distinct.insert(sweep::CanonicalJson(assignment)).second);
    if (options.check_hyperparameters) {
      Check(sweep::HyperparametersFromAssignment(assignment).ok());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const bool check_hyperparameters : {true, false}) {
    const sweep::GridOptions options = {.check_hyperparameters = check_hyperparameters};
    const absl::StatusOr<sweep::Grid> grid = sweep::Grid::Parse(text, options);
    if (!grid.ok()) {
      Check(grid.status().code() == absl::StatusCode::kInvalidArgument);
      Check(!grid.status().message().empty());
      continue;
    }
    CheckAcceptedGrid(*grid, options, size);
  }
  return 0;
}
