#ifndef SWEEP_SERVER_METRICS_H_
#define SWEEP_SERVER_METRICS_H_

// A small metrics registry that renders the Prometheus text exposition format, version 0.0.4.
//
// A registry owns metric families. Each family has a name, a help text, a type and label
// names, and renders as HELP and TYPE lines followed by its samples. Families render in name
// order, and the series of a counter family render in label value order, so the output is
// deterministic. Three kinds of family exist:
//   - counters, incremented with an atomic add;
//   - histograms with fixed upper bounds, one mutex per histogram;
//   - callback families (gauges or counters), whose samples a function returns at render time.
//
// Usage:
//   MetricsRegistry registry;
//   Counter& rows = registry.AddCounter("sweep_metric_rows_written_total", "Rows stored.");
//   Histogram& latency = registry.AddHistogram("sweep_acquire_latency_seconds", "...",
//                                              LatencyBucketsSeconds());
//   registry.AddGaugeCallback("sweep_active_workers", "...", [] { return 3.0; });
//   rows.Increment(5);
//   { ScopedLatencyTimer timer(&latency); ... }
//   absl::StatusOr<std::string> text = registry.Render();

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep::server {

// Content-Type of a response that carries Render()'s output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Upper bounds of the latency histogram buckets, in seconds: 0.5 ms to 10 s.
std::vector<double> LatencyBucketsSeconds();

// A monotonically increasing count. Thread-safe and lock-free.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Increment(uint64_t amount = 1) { value_.fetch_add(amount, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Counters that share a name and label names, one per combination of label values.
// Thread-safe. Incrementing a counter already returned by WithLabels takes no lock.
class CounterFamily {
 public:
  explicit CounterFamily(std::vector<std::string> label_names);
  CounterFamily(const CounterFamily&) = delete;
  CounterFamily& operator=(const CounterFamily&) = delete;

  // Returns the counter of `label_values`, given in the order of the label names, and creates
  // it at zero on first use. The counter lives as long as the family. Takes the family's
  // mutex, so callers on a hot path keep the reference. Aborts when the number of values
  // differs from the number of label names, because that is a programming error.
  Counter& WithLabels(const std::vector<std::string>& label_values);

  const std::vector<std::string>& label_names() const { return label_names_; }

  // Label values and value of every counter created so far, in label value order.
  std::vector<std::pair<std::vector<std::string>, uint64_t>> Collect() const;

 private:
  const std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Counter>> counters_ ABSL_GUARDED_BY(mutex_);
};

// Counts observed values in buckets with fixed upper bounds and keeps their sum. A value
// equal to a bound falls into that bound's bucket, because the format's `le` label means "less
// than or equal". Thread-safe: Observe and Read take one mutex per histogram.
class Histogram {
 public:
  // Bounds must be finite and strictly increasing. The +Inf bucket is implicit.
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Adds one observation. A NaN counts only in the +Inf bucket and makes the sum NaN.
  void Observe(double value);

  struct Snapshot {
    // Cumulative counts: element i counts the values <= upper_bounds()[i], and the last
    // element, one past the bounds, counts every value (the +Inf bucket).
    std::vector<uint64_t> cumulative_counts;
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  const std::vector<double> upper_bounds_;
  mutable std::mutex mutex_;
  // Per-bucket (not cumulative) counts. The last element is the +Inf bucket.
  std::vector<uint64_t> bucket_counts_ ABSL_GUARDED_BY(mutex_);
  double sum_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Observes the seconds between its construction and destruction into a histogram, measured
// on the steady clock. Observes nothing when the histogram is null, so code with optional
// metrics needs no branch.
class ScopedLatencyTimer {
 public:
  explicit ScopedLatencyTimer(Histogram* histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedLatencyTimer() {
    if (histogram_ == nullptr) return;
    histogram_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ScopedLatencyTimer(const ScopedLatencyTimer&) = delete;
  ScopedLatencyTimer& operator=(const ScopedLatencyTimer&) = delete;

 private:
  Histogram* const histogram_;
  const std::chrono::steady_clock::time_point start_;
};

// One sample of a callback family: label values in the order of the family's label names.
struct Sample {
  std::vector<std::string> label_values;
  double value = 0;
};

// Returns a callback family's samples at render time, or an error that fails the render.
using SampleCallback = std::function<absl::StatusOr<std::vector<Sample>>()>;

enum class MetricType { kCounter, kGauge, kHistogram };

// Owns metric families and renders them. Thread-safe. References returned by the Add
// functions stay valid as long as the registry.
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]* without a
// leading "__". Registering a name twice, an invalid name or invalid histogram bounds is a
// programming error: the Add functions log it and abort.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Adds a counter without labels.
  Counter& AddCounter(std::string name, std::string help);
  // Adds a counter family whose series WithLabels creates on first use.
  CounterFamily& AddCounterFamily(std::string name, std::string help,
                                  std::vector<std::string> label_names);
  // Adds a histogram without labels. LatencyBucketsSeconds() returns bounds for latencies.
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> upper_bounds);

  // Adds a gauge without labels whose value `callback` returns at render time.
  void AddGaugeCallback(std::string name, std::string help, std::function<double()> callback);
  // Adds a gauge or counter family whose samples `callback` returns at render time. The
  // callback runs on the rendering thread without any registry lock held, may run
  // concurrently with itself when two renders overlap, and must not register metrics.
  void AddCallback(std::string name, std::string help, MetricType type,
                   std::vector<std::string> label_names, SampleCallback callback);

  // Renders every family in the text exposition format 0.0.4. Returns the first error of a
  // callback, prefixed with the family's name, or INTERNAL when a callback returns a sample
  // with the wrong number of label values.
  absl::StatusOr<std::string> Render() const;

 private:
  struct Family;

  // Adds `family` under its name, and aborts when the name is invalid or taken.
  Family& Register(std::unique_ptr<Family> family);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_ ABSL_GUARDED_BY(mutex_);
};

// Adds the standard process metrics of the calling process, read from /proc/self at render
// time: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds, process_open_fds and
// process_max_fds. Linux only.
void AddProcessMetrics(MetricsRegistry& registry);

// The coordinator's own metrics that its code updates directly.
struct CoordinatorMetrics {
  // Registers every metric below in `registry`, which must outlive this object.
  explicit CoordinatorMetrics(MetricsRegistry& registry);

  // sweep_acquire_latency_seconds: time of one lease transaction in the store, without the
  // time an AcquireTrial call waits for a pending trial.
  Histogram& acquire_latency;
  // sweep_report_latency_seconds: time to store one trial stream update and renew its lease.
  Histogram& report_latency;
  // sweep_metric_rows_written_total: metric rows stored, not counting resent rows.
  Counter& metric_rows_written;
  // sweep_rpc_errors_total{method,code}: RPCs that returned a status other than OK.
  CounterFamily& rpc_errors;
};

// Returns the number of trials in each state. States without trials may be missing.
using TrialCountsCallback = std::function<absl::StatusOr<std::map<v1::TrialState, int64_t>>()>;
// Returns the number of workers that count as active.
using WorkerCountCallback = std::function<absl::StatusOr<int64_t>()>;

// Adds the gauges that read the store at render time: sweep_trials{state}, one sample per
// trial state with 0 for states that `count_trials` leaves out, and sweep_active_workers.
void AddStoreGauges(MetricsRegistry& registry, TrialCountsCallback count_trials,
                    WorkerCountCallback count_active_workers);

// Returns samples of sweep_trials: one per trial state in enum order, UNSPECIFIED excepted,
// labelled with the state's enum name in lower case without its prefix ("pending").
std::vector<Sample> TrialStateSamples(const std::map<v1::TrialState, int64_t>& counts);

// Creates a gRPC server interceptor factory that increments
// rpc_errors{method="sweep.v1.WorkerService/AcquireTrial", code="NOT_FOUND"} for every call
// that ends with a status other than OK. `rpc_errors` must have the label names
// {"method", "code"} and outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcErrorInterceptorFactory(CounterFamily& rpc_errors);

}  // namespace sweep::server

#endif  // SWEEP_SERVER_METRICS_H_
