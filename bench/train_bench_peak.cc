#include "bench/train_bench_peak.h"

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sweep::bench {
namespace {

#if defined(__x86_64__)
// Enough independent accumulators to cover the FMA latency on two FMA pipes.
constexpr int kAccumulators = 12;
constexpr int64_t kIterations = 200'000'000;

// Runs kIterations rounds of kAccumulators 8-wide FMAs and returns a value that depends on
// all of them, so the compiler keeps the loop.
__attribute__((target("avx2,fma"))) float RunFmaLoop() {
  __m256 accumulators[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) accumulators[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 scale = _mm256_set1_ps(0.999999f);
  const __m256 offset = _mm256_set1_ps(1e-7f);
  for (int64_t iteration = 0; iteration < kIterations; ++iteration) {
    for (int i = 0; i < kAccumulators; ++i) {
      accumulators[i] = _mm256_fmadd_ps(accumulators[i], scale, offset);
    }
  }
  __m256 sum = _mm256_setzero_ps();
  for (int i = 0; i < kAccumulators; ++i) sum = _mm256_add_ps(sum, accumulators[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  return lanes[0];
}
#endif

}  // namespace

double MeasurePeakGflops(int threads) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  std::vector<float> sinks(threads);
  std::vector<std::thread> workers;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&sinks, t] { sinks[t] = RunFmaLoop(); });
  }
  for (std::thread& worker : workers) worker.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double flop = 2.0 * 8 * kAccumulators * static_cast<double>(kIterations) * threads;
  return sinks[0] == -1.0f ? 0 : flop / seconds / 1e9;
#else
  return 0;
#endif
}

}  // namespace sweep::bench
