#include "server/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

namespace sweep::server {

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  // Exactly one of the next three is set.
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<Histogram> histogram;
  SampleCallback callback;
  // Label names of a callback family.
  std::vector<std::string> callback_label_names;
};

namespace {

// Logs a registration error and aborts. Metric names and bounds are fixed in the code, so an
// invalid one is a programming error that every run would hit.
[[noreturn]] void FailRegistration(std::string_view name, std::string_view problem) {
  spdlog::critical("metric \"{}\": {}", name, problem);
  std::abort();
}

bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool valid = absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
                       (i > 0 && absl::ascii_isdigit(static_cast<unsigned char>(c)));
    if (!valid) return false;
  }
  return true;
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool valid = absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' ||
                       (i > 0 && absl::ascii_isdigit(static_cast<unsigned char>(c)));
    if (!valid) return false;
  }
  return true;
}

void CheckLabelNames(std::string_view metric, const std::vector<std::string>& label_names) {
  std::set<std::string_view> seen;
  for (const std::string& label : label_names) {
    if (!IsLabelName(label)) {
      FailRegistration(metric, "label name \"" + label + "\" is invalid");
    }
    if (!seen.insert(label).second) {
      FailRegistration(metric, "label name \"" + label + "\" appears twice");
    }
  }
}

// Escapes a HELP text: backslash and line feed.
std::string EscapeHelp(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

// Escapes a label value: backslash, double quote and line feed.
std::string EscapeLabelValue(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

// Formats a sample value or bucket bound. Integral values below 2^53 print as integers, so
// counts read naturally. Others print as the shortest decimal that parses back to the same
// double, in fixed or scientific notation as printf's %g chooses (0.0005, 1e-05).
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::trunc(value) == value && std::abs(value) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buffer[64];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general);
  return std::string(buffer, result.ptr);
}

// Appends one sample line: name{label="value",...} value.
void AppendSample(std::string& out, std::string_view name,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, std::string_view value) {
  out += name;
  if (!label_names.empty()) {
    out += '{';
    for (size_t i = 0; i < label_names.size(); ++i) {
      if (i > 0) out += ',';
      out += label_names[i];
      out += "=\"";
      out += EscapeLabelValue(label_values[i]);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Runs a callback family's callback and appends its samples.
absl::Status AppendCallbackSamples(std::string& out, const std::string& name,
                                   const std::vector<std::string>& label_names,
                                   const SampleCallback& callback) {
  absl::StatusOr<std::vector<Sample>> samples = callback();
  if (!samples.ok()) {
    return absl::Status(samples.status().code(),
                        "metric " + name + ": " + std::string(samples.status().message()));
  }
  for (const Sample& sample : *samples) {
    if (sample.label_values.size() != label_names.size()) {
      return absl::InternalError("metric " + name + ": a sample has " +
                                 std::to_string(sample.label_values.size()) + " label values for " +
                                 std::to_string(label_names.size()) + " label names");
    }
    AppendSample(out, name, label_names, sample.label_values, FormatValue(sample.value));
  }
  return absl::OkStatus();
}

void AppendHistogram(std::string& out, std::string_view name, const Histogram& histogram) {
  const Histogram::Snapshot snapshot = histogram.Read();
  const std::vector<double>& bounds = histogram.upper_bounds();
  const std::string bucket_name = std::string(name) + "_bucket";
  const std::vector<std::string> le = {"le"};

  for (size_t i = 0; i < bounds.size(); ++i) {
    AppendSample(out, bucket_name, le, {FormatValue(bounds[i])},
                 std::to_string(snapshot.cumulative_counts[i]));
  }
  AppendSample(out, bucket_name, le, {"+Inf"}, std::to_string(snapshot.count));
  AppendSample(out, std::string(name) + "_sum", {}, {}, FormatValue(snapshot.sum));
  AppendSample(out, std::string(name) + "_count", {}, {}, std::to_string(snapshot.count));
}

}  // namespace

std::vector<double> LatencyBucketsSeconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

CounterFamily::CounterFamily(std::vector<std::string> label_names)
    : label_names_(std::move(label_names)) {}

Counter& CounterFamily::WithLabels(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    spdlog::critical("counter family with {} label names got {} label values", label_names_.size(),
                     label_values.size());
    std::abort();
  }

  std::lock_guard lock(mutex_);
  std::unique_ptr<Counter>& counter = counters_[label_values];
  if (counter == nullptr) counter = std::make_unique<Counter>();
  return *counter;
}

std::vector<std::pair<std::vector<std::string>, uint64_t>> CounterFamily::Collect() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::vector<std::string>, uint64_t>> values;
  values.reserve(counters_.size());
  for (const auto& [label_values, counter] : counters_) {
    values.emplace_back(label_values, counter->value());
  }
  return values;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), bucket_counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  // lower_bound finds the first bound >= value, so a value equal to a bound counts in it.
  size_t bucket = upper_bounds_.size();
  if (!std::isnan(value)) {
    bucket =
        static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) -
                            upper_bounds_.begin());
  }

  std::lock_guard lock(mutex_);
  ++bucket_counts_[bucket];
  sum_ += value;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.cumulative_counts.reserve(bucket_counts_.size());

  std::lock_guard lock(mutex_);
  for (const uint64_t count : bucket_counts_) {
    snapshot.count += count;
    snapshot.cumulative_counts.push_back(snapshot.count);
  }
  snapshot.sum = sum_;
  return snapshot;
}

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::Register(std::unique_ptr<Family> family) {
  if (!IsMetricName(family->name)) FailRegistration(family->name, "the name is invalid");
  if (family->help.empty()) FailRegistration(family->name, "the help text is empty");

  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(family->name, std::move(family));
  if (!inserted) FailRegistration(it->first, "the name is already registered");
  return *it->second;
}

Counter& MetricsRegistry::AddCounter(std::string name, std::string help) {
  return AddCounterFamily(std::move(name), std::move(help), {}).WithLabels({});
}

CounterFamily& MetricsRegistry::AddCounterFamily(std::string name, std::string help,
                                                 std::vector<std::string> label_names) {
  CheckLabelNames(name, label_names);
  auto family = std::make_unique<Family>();
  family->name = std::move(name);
  family->help = std::move(help);
  family->type = MetricType::kCounter;
  family->counters = std::make_unique<CounterFamily>(std::move(label_names));
  return *Register(std::move(family)).counters;
}

Histogram& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                         std::vector<double> upper_bounds) {
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i])) {
      FailRegistration(name, "bucket bound " + FormatValue(upper_bounds[i]) +
                                 " is not finite; the +Inf bucket is implicit");
    }
    if (i > 0 && upper_bounds[i] <= upper_bounds[i - 1]) {
      FailRegistration(
          name, "bucket bounds are not strictly increasing at " + FormatValue(upper_bounds[i]));
    }
  }
  auto family = std::make_unique<Family>();
  family->name = std::move(name);
  family->help = std::move(help);
  family->type = MetricType::kHistogram;
  family->histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *Register(std::move(family)).histogram;
}

void MetricsRegistry::AddGaugeCallback(std::string name, std::string help,
                                       std::function<double()> callback) {
  AddCallback(std::move(name), std::move(help), MetricType::kGauge, {},
              [callback = std::move(callback)]() -> absl::StatusOr<std::vector<Sample>> {
                return std::vector<Sample>{{{}, callback()}};
              });
}

void MetricsRegistry::AddCallback(std::string name, std::string help, MetricType type,
                                  std::vector<std::string> label_names, SampleCallback callback) {
  if (type == MetricType::kHistogram) {
    FailRegistration(name, "a callback family must be a counter or a gauge");
  }
  CheckLabelNames(name, label_names);
  auto family = std::make_unique<Family>();
  family->name = std::move(name);
  family->help = std::move(help);
  family->type = type;
  family->callback = std::move(callback);
  family->callback_label_names = std::move(label_names);
  Register(std::move(family));
}

absl::StatusOr<std::string> MetricsRegistry::Render() const {
  // Families are never removed, so the pointers stay valid after the lock is released, and
  // callbacks run without it.
  std::vector<const Family*> families;
  {
    std::lock_guard lock(mutex_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }

  std::string out;
  for (const Family* family : families) {
    out += "# HELP " + family->name + " " + EscapeHelp(family->help) + "\n";
    out += "# TYPE " + family->name + " ";
    out += TypeName(family->type);
    out += '\n';
    if (family->counters != nullptr) {
      for (const auto& [label_values, value] : family->counters->Collect()) {
        AppendSample(out, family->name, family->counters->label_names(), label_values,
                     std::to_string(value));
      }
    } else if (family->histogram != nullptr) {
      AppendHistogram(out, family->name, *family->histogram);
    } else {
      absl::Status status =
          AppendCallbackSamples(out, family->name, family->callback_label_names, family->callback);
      if (!status.ok()) return status;
    }
  }
  return out;
}

namespace {

absl::StatusOr<std::string> ReadProcFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::UnavailableError("failed to read " + path);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// Fields of /proc/self/stat used by the process metrics, converted to seconds and bytes.
struct ProcessStat {
  double cpu_seconds = 0;
  double start_time_seconds = 0;
  double virtual_memory_bytes = 0;
  double resident_memory_bytes = 0;
};

// Reads the seconds since the Unix epoch at which the system booted, the "btime" line of
// /proc/stat.
absl::StatusOr<double> ReadBootTime() {
  absl::StatusOr<std::string> text = ReadProcFile("/proc/stat");
  if (!text.ok()) return text.status();
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("btime ", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  }
  return absl::UnavailableError("/proc/stat has no btime line");
}

// Parses /proc/self/stat as proc(5) describes it. The command name in field 2 may contain
// spaces and parentheses, so fields are counted from the last ')'.
absl::StatusOr<ProcessStat> ReadProcessStat() {
  absl::StatusOr<std::string> text = ReadProcFile("/proc/self/stat");
  if (!text.ok()) return text.status();
  const size_t name_end = text->rfind(')');
  if (name_end == std::string::npos) return absl::UnavailableError("/proc/self/stat is malformed");
  std::istringstream fields(text->substr(name_end + 1));
  // The command name is followed by field 3 (state) and the rest, so field N is values[N - 3].
  std::vector<std::string> values{std::istream_iterator<std::string>(fields),
                                  std::istream_iterator<std::string>()};
  if (values.size() < 22) return absl::UnavailableError("/proc/self/stat has too few fields");
  auto field = [&values](int number) { return std::strtod(values[number - 3].c_str(), nullptr); };

  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  absl::StatusOr<double> boot_time = ReadBootTime();
  if (!boot_time.ok()) return boot_time.status();
  ProcessStat stat;
  stat.cpu_seconds = (field(14) + field(15)) / ticks_per_second;  // utime + stime
  stat.start_time_seconds = *boot_time + field(22) / ticks_per_second;
  stat.virtual_memory_bytes = field(23);
  stat.resident_memory_bytes = field(24) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return stat;
}

// Wraps one field of ReadProcessStat() as a sample callback.
SampleCallback ProcessStatCallback(double ProcessStat::*member) {
  return [member]() -> absl::StatusOr<std::vector<Sample>> {
    absl::StatusOr<ProcessStat> stat = ReadProcessStat();
    if (!stat.ok()) return stat.status();
    return std::vector<Sample>{{{}, (*stat).*member}};
  };
}

absl::StatusOr<std::vector<Sample>> CountOpenFds() {
  std::error_code error;
  std::filesystem::directory_iterator entries("/proc/self/fd", error);
  if (error) return absl::UnavailableError("failed to list /proc/self/fd: " + error.message());
  // NOTE: the count includes the descriptor that lists the directory.
  const auto count = std::distance(std::filesystem::begin(entries), std::filesystem::end(entries));
  return std::vector<Sample>{{{}, static_cast<double>(count)}};
}

absl::StatusOr<std::vector<Sample>> ReadMaxFds() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::UnavailableError("getrlimit(RLIMIT_NOFILE) failed");
  }
  const double value =
      limit.rlim_cur == RLIM_INFINITY ? HUGE_VAL : static_cast<double>(limit.rlim_cur);
  return std::vector<Sample>{{{}, value}};
}

}  // namespace

void AddProcessMetrics(MetricsRegistry& registry) {
  registry.AddCallback("process_cpu_seconds_total", "Total user and system CPU time in seconds.",
                       MetricType::kCounter, {}, ProcessStatCallback(&ProcessStat::cpu_seconds));
  registry.AddCallback("process_resident_memory_bytes", "Resident memory size in bytes.",
                       MetricType::kGauge, {},
                       ProcessStatCallback(&ProcessStat::resident_memory_bytes));
  registry.AddCallback("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                       MetricType::kGauge, {},
                       ProcessStatCallback(&ProcessStat::virtual_memory_bytes));
  registry.AddCallback(
      "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.",
      MetricType::kGauge, {}, ProcessStatCallback(&ProcessStat::start_time_seconds));
  registry.AddCallback("process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
                       {}, CountOpenFds);
  registry.AddCallback("process_max_fds", "Maximum number of open file descriptors.",
                       MetricType::kGauge, {}, ReadMaxFds);
}

CoordinatorMetrics::CoordinatorMetrics(MetricsRegistry& registry)
    : acquire_latency(registry.AddHistogram(
          "sweep_acquire_latency_seconds",
          "Seconds one lease transaction of AcquireTrial took in the store, without waiting.",
          LatencyBucketsSeconds())),
      report_latency(registry.AddHistogram(
          "sweep_report_latency_seconds",
          "Seconds the coordinator took to store one trial stream update and renew its lease.",
          LatencyBucketsSeconds())),
      metric_rows_written(registry.AddCounter(
          "sweep_metric_rows_written_total",
          "Metric rows stored from trial stream updates, not counting rows sent again.")),
      rpc_errors(registry.AddCounterFamily("sweep_rpc_errors_total",
                                           "RPCs that returned a status other than OK.",
                                           {"method", "code"})) {}

std::vector<Sample> TrialStateSamples(const std::map<v1::TrialState, int64_t>& counts) {
  static constexpr std::string_view kPrefix = "TRIAL_STATE_";
  std::vector<Sample> samples;
  for (int state = v1::TrialState_MIN; state <= v1::TrialState_MAX; ++state) {
    if (!v1::TrialState_IsValid(state) || state == v1::TRIAL_STATE_UNSPECIFIED) continue;
    const auto trial_state = static_cast<v1::TrialState>(state);
    std::string label = v1::TrialState_Name(trial_state).substr(kPrefix.size());
    absl::AsciiStrToLower(&label);
    const auto it = counts.find(trial_state);
    samples.push_back({{label}, it == counts.end() ? 0.0 : static_cast<double>(it->second)});
  }
  return samples;
}

void AddStoreGauges(MetricsRegistry& registry, TrialCountsCallback count_trials,
                    WorkerCountCallback count_active_workers) {
  registry.AddCallback(
      "sweep_trials", "Trials in the store by state.", MetricType::kGauge, {"state"},
      [count_trials = std::move(count_trials)]() -> absl::StatusOr<std::vector<Sample>> {
        absl::StatusOr<std::map<v1::TrialState, int64_t>> counts = count_trials();
        if (!counts.ok()) return counts.status();
        return TrialStateSamples(*counts);
      });
  registry.AddCallback(
      "sweep_active_workers", "Workers that count as active.", MetricType::kGauge, {},
      [count = std::move(count_active_workers)]() -> absl::StatusOr<std::vector<Sample>> {
        absl::StatusOr<int64_t> workers = count();
        if (!workers.ok()) return workers.status();
        return std::vector<Sample>{{{}, static_cast<double>(*workers)}};
      });
}

namespace {

// Counts the call's final status when it is not OK.
class RpcErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcErrorInterceptor(CounterFamily& rpc_errors, std::string method)
      : rpc_errors_(rpc_errors), method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (!status.ok()) {
        // grpc::StatusCode and absl::StatusCode share their numbers and canonical names.
        const std::string code =
            absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
        rpc_errors_.WithLabels({method_, code}).Increment();
      }
    }
    methods->Proceed();
  }

 private:
  CounterFamily& rpc_errors_;
  // The method's full name without the leading slash.
  const std::string method_;
};

class RpcErrorInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcErrorInterceptorFactory(CounterFamily& rpc_errors) : rpc_errors_(rpc_errors) {}

  // gRPC takes ownership of the returned interceptor.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    std::string_view method = info->method() == nullptr ? "" : info->method();
    if (!method.empty() && method.front() == '/') method.remove_prefix(1);
    return new RpcErrorInterceptor(rpc_errors_, std::string(method));
  }

 private:
  CounterFamily& rpc_errors_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcErrorInterceptorFactory(CounterFamily& rpc_errors) {
  return std::make_unique<RpcErrorInterceptorFactory>(rpc_errors);
}

}  // namespace sweep::server
