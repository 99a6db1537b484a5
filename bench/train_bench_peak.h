#ifndef SWEEP_BENCH_TRAIN_BENCH_PEAK_H_
#define SWEEP_BENCH_TRAIN_BENCH_PEAK_H_

namespace sweep::bench {

// Measures the peak float32 rate of `threads` CPU threads in GFLOP/s with a loop of
// independent 256-bit fused multiply-adds (an FMA counts as 2 FLOP). Returns 0 when the CPU
// lacks AVX2 and FMA or is not x86-64.
double MeasurePeakGflops(int threads);

}  // namespace sweep::bench

#endif  // SWEEP_BENCH_TRAIN_BENCH_PEAK_H_
