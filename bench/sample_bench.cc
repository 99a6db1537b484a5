// Times SampleCombinations against the approach of a script that builds the whole
// cartesian product (like Python's list(itertools.product(...))), shuffles it and takes
// the first N. Prints medians over several runs and the peak resident set size after
// each phase. Usage: sample_bench [RUNS] (default 7). Results: docs/benchmarks.md.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/search_space.h"

namespace {

constexpr int64_t kSampleSize = 10000;

// `parameter_count` parameters named p00, p01, ... with the integers 0 .. 9 each: a grid
// of 10^parameter_count combinations, built without hyperparameter checks.
sweep::Grid DigitGrid(int parameter_count) {
  std::vector<sweep::GridParameter> parameters;
  for (int p = 0; p < parameter_count; ++p) {
    sweep::GridParameter& parameter = parameters.emplace_back();
    parameter.name = absl::StrCat(p < 10 ? "p0" : "p", p);
    for (int64_t v = 0; v < 10; ++v) parameter.values.push_back(sweep::Value(v));
  }
  absl::StatusOr<sweep::Grid> grid =
      sweep::Grid::FromParameters(std::move(parameters), {.check_hyperparameters = false});
  if (!grid.ok()) {
    std::fprintf(stderr, "sample_bench: %s\n", std::string(grid.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(grid);
}

// The baseline: materializes every combination as a tuple of values, shuffles all of
// them with Fisher-Yates and converts the first kSampleSize into assignments.
std::vector<sweep::Assignment> SampleByBuildingProduct(const sweep::Grid& grid, uint64_t seed) {
  const std::vector<sweep::GridParameter>& parameters = grid.parameters();
  const int64_t count = grid.CombinationCountCapped(INT64_MAX);
  std::vector<std::vector<sweep::Value>> product;
  product.reserve(count);
  // An odometer over the value indices, last parameter fastest, as itertools.product.
  std::vector<size_t> digits(parameters.size(), 0);
  for (int64_t i = 0; i < count; ++i) {
    std::vector<sweep::Value>& tuple = product.emplace_back();
    tuple.reserve(parameters.size());
    for (size_t p = 0; p < parameters.size(); ++p) tuple.push_back(parameters[p].values[digits[p]]);
    for (size_t p = parameters.size(); p-- > 0;) {
      if (++digits[p] < parameters[p].values.size()) break;
      digits[p] = 0;
    }
  }

  std::mt19937_64 engine(seed);
  for (size_t i = product.size(); i > 1; --i) {
    std::swap(product[i - 1], product[engine() % i]);  // Slight modulo bias is fine here.
  }

  std::vector<sweep::Assignment> sample;
  const size_t sample_count = std::min<size_t>(product.size(), kSampleSize);
  for (size_t i = 0; i < sample_count; ++i) {
    sweep::Assignment& assignment = sample.emplace_back();
    for (size_t p = 0; p < parameters.size(); ++p) {
      assignment.emplace_back(parameters[p].name, product[i][p]);
    }
  }
  return sample;
}

// Median wall time in milliseconds of `runs` calls of `sample(seed)`, seeds 1 .. runs.
double MedianMilliseconds(int runs, const std::function<size_t(uint64_t)>& sample) {
  std::vector<double> times;
  for (int run = 1; run <= runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const size_t sampled = sample(run);
    const std::chrono::duration<double, std::milli> elapsed =
        std::chrono::steady_clock::now() - start;
    if (sampled != static_cast<size_t>(kSampleSize)) {
      std::fprintf(stderr, "sample_bench: sampled %zu combinations, expected %lld\n", sampled,
                   static_cast<long long>(kSampleSize));
      std::exit(1);
    }
    times.push_back(elapsed.count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Peak resident set size of this process so far, in MiB.
double PeakRssMib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux.
}

size_t SampleWithSampler(const sweep::Grid& grid, uint64_t seed) {
  absl::StatusOr<std::vector<sweep::Assignment>> sample =
      sweep::SampleCombinations(grid, kSampleSize, seed);
  return sample.ok() ? sample->size() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 7;
  if (runs < 1) {
    std::fprintf(stderr, "usage: sample_bench [RUNS]; RUNS must be a positive integer\n");
    return 2;
  }

  // The sampler runs first because peak RSS only grows.
  const sweep::Grid huge = DigitGrid(20);
  const sweep::Grid small = DigitGrid(6);
  const double huge_ms =
      MedianMilliseconds(runs, [&](uint64_t seed) { return SampleWithSampler(huge, seed); });
  const double small_ms =
      MedianMilliseconds(runs, [&](uint64_t seed) { return SampleWithSampler(small, seed); });
  const double sampler_rss = PeakRssMib();
  const double product_ms = MedianMilliseconds(
      runs, [&](uint64_t seed) { return SampleByBuildingProduct(small, seed).size(); });
  const double product_rss = PeakRssMib();

  std::printf("runs per measurement: %d, combinations sampled: %lld\n", runs,
              static_cast<long long>(kSampleSize));
  std::printf("%-40s %12s %14s\n", "method", "median ms", "peak RSS MiB");
  std::printf("%-40s %12.2f %14.1f\n", "SampleCombinations, 10^20 grid", huge_ms, sampler_rss);
  std::printf("%-40s %12.2f %14.1f\n", "SampleCombinations, 10^6 grid", small_ms, sampler_rss);
  std::printf("%-40s %12.2f %14.1f\n", "build product + shuffle, 10^6 grid", product_ms,
              product_rss);
  std::printf("product / sampler on the 10^6 grid: %.1fx\n", product_ms / small_ms);
  std::printf("product on 10^6 / sampler on 10^20: %.1fx\n", product_ms / huge_ms);
  return 0;
}
