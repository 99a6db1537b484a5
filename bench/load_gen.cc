// load_gen: coordinator throughput under simulated workers that train nothing.
//
// Submits one sweep of --trials trials, then runs --workers threads, each with its own
// gRPC channel and TCP connection. Each thread makes the calls a real worker makes per
// trial, with no training time in between (or --epoch-ms per epoch):
// 1. AcquireTrial;
// 2. StreamTrial with --epochs updates of --metrics-per-epoch rows each and one heartbeat,
//    then a wait for the acknowledgement of every row;
// 3. FinishTrial COMPLETED.
// Prints trials/s, metric rows/s, latency percentiles and the coordinator's CPU time and
// memory. Exits 1 unless every trial of the sweep completed.
//
// The coordinator is either one this program starts (--coordinator-binary, with a fresh
// SQLite file unless --db is given) or a running one (--coordinator, with
// --coordinator-pid to read its CPU time and memory). A running coordinator must have no
// other pending trials, because the workers lease whatever it hands out.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <latch>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "bench/load_support.h"
#include "sweep/v1/sweep.grpc.pb.h"

namespace sweep::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int workers = 16;
  int64_t trials = 2000;
  int epochs = 5;
  int metrics_per_epoch = 8;
  int acquire_wait_ms = 10'000;
  int epoch_ms = 0;
  uint64_t seed = 1;
  std::string coordinator;
  int coordinator_pid = 0;
  std::string coordinator_binary;
  std::string db;
  std::string coordinator_log_level = "info";
  bool keep = false;
};

// Metric names of one epoch: the four the trainer reports, then plausible extras.
std::vector<std::string> MetricNames(int count) {
  const std::vector<std::string> known = {"train_loss",        "train_accuracy", "val_loss",
                                          "val_accuracy",      "learning_rate",  "epoch_seconds",
                                          "images_per_second", "gradient_norm"};
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) {
    names.push_back(i < static_cast<int>(known.size()) ? known[i]
                                                       : "metric_" + std::to_string(i + 1));
  }
  return names;
}

// A grid of 100^3 * 2^4 = 16,000,000 combinations over the eight known hyperparameters,
// so any --trials up to the coordinator's --max-grid-size (default 1,000,000) samples
// distinct combinations.
std::string GridJson(int epochs) {
  std::string range;
  for (int i = 1; i <= 100; ++i) range += (i > 1 ? "," : "") + std::to_string(i);
  return "{\"conv1_depth\":[" + range + "],\"conv2_depth\":[" + range +
         "],\"dense_layer_units\":[" + range +
         "],\"batch_size\":[64,128],\"learning_rate\":[0.001,0.01],"
         "\"keep_prob\":[0.5,1.0],\"augmentation\":[\"none\",\"flip_crop\"],"
         "\"num_epochs\":[" +
         std::to_string(epochs) + "]}";
}

std::string Describe(const grpc::Status& status) {
  return "code " + std::to_string(status.error_code()) + ": " + status.error_message();
}

// Latencies in milliseconds recorded by one worker thread.
struct WorkerRecord {
  std::vector<double> acquire_ms;
  std::vector<double> stream_ms;
  std::vector<double> finish_ms;
  int64_t empty_acquires = 0;
};

// State shared by the worker threads of one run.
class LoadRun {
 public:
  LoadRun(const Options& options, std::string address, pid_t coordinator_pid)
      : options_(options),
        address_(std::move(address)),
        coordinator_pid_(coordinator_pid),
        metric_names_(MetricNames(options.metrics_per_epoch)),
        records_(options.workers),
        parked_(options.workers, nullptr),
        registered_(options.workers + 1) {}

  // Submits the sweep, runs the workers and prints the results. Returns the exit code.
  int Run();

 private:
  std::shared_ptr<grpc::Channel> NewChannel() const;
  bool SubmitSweep();
  void RunWorker(int index);
  bool RunTrial(v1::WorkerService::Stub& stub, int64_t worker_id,
                const v1::AcquireTrialResponse& acquired, WorkerRecord& record,
                std::mt19937_64& random);
  bool Acquire(int index, v1::WorkerService::Stub& stub, int64_t worker_id,
               v1::AcquireTrialResponse& response);
  void OnTrialFinished();
  void CancelParkedAcquires();
  void Fail(const std::string& message);
  bool Done() const { return failed_.load() || finished_.load() >= sweep_trials_; }
  int Report(double elapsed_s, const std::optional<ProcessUsage>& usage_start,
             const std::optional<ProcessUsage>& usage_end, double client_cpu_s);
  bool CheckSweepCompleted();

  const Options& options_;
  const std::string address_;
  const pid_t coordinator_pid_;
  const std::vector<std::string> metric_names_;
  int64_t sweep_id_ = 0;
  int64_t sweep_trials_ = 0;

  std::vector<WorkerRecord> records_;
  std::atomic<int64_t> finished_{0};
  std::atomic<bool> failed_{false};
  // Workers register, then wait for `go_`, which opens once start_time_ is set.
  std::latch registered_;
  std::latch go_{1};
  Clock::time_point start_time_;
  std::atomic<int64_t> last_finish_ns_{0};

  std::mutex mutex_;
  std::string first_error_;
  // Contexts of AcquireTrial calls in flight, cancelled once the last trial finished so
  // idle workers do not wait out their long poll.
  std::vector<grpc::ClientContext*> parked_;
  // Coordinator VmRSS when 10%, 50% and 100% of the trials had finished.
  std::vector<std::pair<int, int64_t>> rss_samples_kib_;
};

std::shared_ptr<grpc::Channel> LoadRun::NewChannel() const {
  grpc::ChannelArguments arguments;
  // Without a local pool, channels with equal arguments share one TCP connection.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), arguments);
}

bool LoadRun::SubmitSweep() {
  std::unique_ptr<v1::SweepService::Stub> stub = v1::SweepService::NewStub(NewChannel());
  v1::SubmitSweepRequest request;
  request.set_grid_json(GridJson(options_.epochs));
  request.set_grid_size(options_.trials);
  request.set_seed(options_.seed);
  request.set_name("load_gen");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::SubmitSweepResponse response;
  const grpc::Status status = stub->SubmitSweep(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "load_gen: SubmitSweep failed (" << Describe(status) << ")\n";
    return false;
  }
  sweep_id_ = response.sweep().id();
  sweep_trials_ = response.sweep().trial_count();
  return true;
}

void LoadRun::Fail(const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    if (first_error_.empty()) first_error_ = message;
  }
  failed_.store(true);
  CancelParkedAcquires();
}

void LoadRun::CancelParkedAcquires() {
  std::lock_guard lock(mutex_);
  for (grpc::ClientContext* context : parked_) {
    if (context != nullptr) context->TryCancel();
  }
}

void LoadRun::OnTrialFinished() {
  const int64_t finished = finished_.fetch_add(1) + 1;
  const int64_t now_ns = (Clock::now() - start_time_).count();
  int64_t previous = last_finish_ns_.load();
  while (previous < now_ns && !last_finish_ns_.compare_exchange_weak(previous, now_ns)) {
  }
  for (int percent : {10, 50, 100}) {
    if (finished != (sweep_trials_ * percent + 99) / 100) continue;
    if (coordinator_pid_ > 0) {
      absl::StatusOr<ProcessUsage> usage = ReadProcessUsage(coordinator_pid_);
      std::lock_guard lock(mutex_);
      if (usage.ok()) rss_samples_kib_.emplace_back(percent, usage->rss_kib);
    }
  }
  if (finished == sweep_trials_) CancelParkedAcquires();
}

// Returns false after a failed call. On success, `response` has no lease when the long
// poll ended empty.
bool LoadRun::Acquire(int index, v1::WorkerService::Stub& stub, int64_t worker_id,
                      v1::AcquireTrialResponse& response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(options_.acquire_wait_ms + 10'000));
  {
    std::lock_guard lock(mutex_);
    parked_[index] = &context;
  }
  // A cancel that raced with the registration above would be lost, so check again.
  if (Done()) context.TryCancel();
  v1::AcquireTrialRequest request;
  request.set_worker_id(worker_id);
  request.set_wait_ms(options_.acquire_wait_ms);
  const auto begin = Clock::now();
  const grpc::Status status = stub.AcquireTrial(&context, request, &response);
  const double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - begin).count();
  {
    std::lock_guard lock(mutex_);
    parked_[index] = nullptr;
  }
  if (status.error_code() == grpc::StatusCode::CANCELLED && Done()) {
    response.clear_lease();
    return true;
  }
  if (!status.ok()) {
    Fail("worker " + std::to_string(index) + ": AcquireTrial failed (" + Describe(status) + ")");
    return false;
  }
  if (response.has_lease()) {
    records_[index].acquire_ms.push_back(elapsed_ms);
  } else {
    ++records_[index].empty_acquires;
  }
  return true;
}

bool LoadRun::RunTrial(v1::WorkerService::Stub& stub, int64_t worker_id,
                       const v1::AcquireTrialResponse& acquired, WorkerRecord& record,
                       std::mt19937_64& random) {
  const v1::Lease& lease = acquired.lease();
  const std::string trial = "trial " + std::to_string(lease.trial_id());
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  // Writes every update before reading the acknowledgements, as the real worker's
  // separate reader thread allows. The coordinator replies to each update in order.
  const auto stream_begin = Clock::now();
  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  std::unique_ptr<grpc::ClientReaderWriter<v1::TrialUpdate, v1::TrialCommand>> stream =
      stub.StreamTrial(&stream_context);
  int64_t seq = 0;
  for (int epoch = 1; epoch <= options_.epochs; ++epoch) {
    v1::TrialUpdate update;
    *update.mutable_lease() = lease;
    update.set_worker_id(worker_id);
    for (const std::string& name : metric_names_) {
      v1::MetricRow* row = update.add_rows();
      row->set_seq(++seq);
      row->set_epoch(epoch);
      row->set_step(epoch * 469);
      row->set_name(name);
      row->set_value(unit(random));
    }
    if (!stream->Write(update)) break;
    if (options_.epoch_ms > 0) {
      // Epoch times vary by +-50% so workers that started together drift apart.
      std::this_thread::sleep_for(
          std::chrono::duration<double, std::milli>(options_.epoch_ms * (0.5 + unit(random))));
    }
  }
  v1::TrialUpdate heartbeat;
  *heartbeat.mutable_lease() = lease;
  heartbeat.set_worker_id(worker_id);
  stream->Write(heartbeat);
  stream->WritesDone();
  v1::TrialCommand command;
  int64_t acked_seq = 0;
  int replies = 0;
  while (stream->Read(&command)) {
    acked_seq = std::max(acked_seq, command.acked_seq());
    ++replies;
    if (command.stop() != v1::STOP_REASON_UNSPECIFIED) {
      Fail(trial + ": coordinator sent stop: " + command.stop_message());
      return false;
    }
  }
  const grpc::Status stream_status = stream->Finish();
  if (!stream_status.ok() || acked_seq != seq || replies != options_.epochs + 1) {
    Fail(trial + ": stream ended with " + std::to_string(replies) + " replies, acked_seq " +
         std::to_string(acked_seq) + " of " + std::to_string(seq) + " (" + Describe(stream_status) +
         ")");
    return false;
  }
  record.stream_ms.push_back(
      std::chrono::duration<double, std::milli>(Clock::now() - stream_begin).count());

  v1::FinishTrialRequest finish;
  *finish.mutable_lease() = lease;
  finish.set_worker_id(worker_id);
  finish.set_outcome(v1::TRIAL_OUTCOME_COMPLETED);
  finish.set_last_seq(acked_seq);
  // The final metrics the LibTorch trainer reports, and the val_accuracy the worker adds.
  const double best = unit(random);
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, double>>{{"best_val_accuracy", best},
                                                   {"best_val_loss", 1.0 - best},
                                                   {"best_epoch", double(options_.epochs)},
                                                   {"train_seconds", 60.0},
                                                   {"test_loss", 1.0 - best},
                                                   {"test_accuracy", best},
                                                   {"val_accuracy", best}}) {
    v1::Metric* metric = finish.add_final_metrics();
    metric->set_name(name);
    metric->set_value(value);
  }
  grpc::ClientContext finish_context;
  finish_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::FinishTrialResponse finished;
  const auto finish_begin = Clock::now();
  const grpc::Status finish_status = stub.FinishTrial(&finish_context, finish, &finished);
  record.finish_ms.push_back(
      std::chrono::duration<double, std::milli>(Clock::now() - finish_begin).count());
  if (!finish_status.ok() || finished.state() != v1::TRIAL_STATE_COMPLETED) {
    Fail(trial + ": FinishTrial returned state " + v1::TrialState_Name(finished.state()) + " (" +
         Describe(finish_status) + ")");
    return false;
  }
  return true;
}

void LoadRun::RunWorker(int index) {
  std::unique_ptr<v1::WorkerService::Stub> stub = v1::WorkerService::NewStub(NewChannel());
  std::mt19937_64 random(options_.seed * 1'000'003 + static_cast<uint64_t>(index));
  v1::RegisterWorkerRequest request;
  request.set_host("load-gen-" + std::to_string(index));
  request.set_device("cpu");
  v1::RegisterWorkerResponse registered;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status status = stub->RegisterWorker(&context, request, &registered);
  registered_.count_down();
  go_.wait();
  if (!status.ok()) {
    Fail("worker " + std::to_string(index) + ": RegisterWorker failed (" + Describe(status) + ")");
    return;
  }

  WorkerRecord& record = records_[index];
  if (options_.epoch_ms > 0) {
    // Real workers do not start in the same millisecond: spread the first acquires over
    // one trial's training time.
    std::uniform_real_distribution<double> offset(0.0, options_.epoch_ms * options_.epochs);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(offset(random)));
  }
  while (!Done()) {
    v1::AcquireTrialResponse acquired;
    if (!Acquire(index, *stub, registered.worker_id(), acquired)) return;
    if (!acquired.has_lease()) continue;
    if (!RunTrial(*stub, registered.worker_id(), acquired, record, random)) return;
    OnTrialFinished();
  }
}

double UserAndSystemSeconds(const rusage& usage) {
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double ClientCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return UserAndSystemSeconds(usage);
}

int LoadRun::Run() {
  if (!SubmitSweep()) return 1;
  std::vector<std::thread> threads;
  for (int i = 0; i < options_.workers; ++i) threads.emplace_back([this, i] { RunWorker(i); });
  // Every worker has a channel and a worker id before the clock starts.
  registered_.arrive_and_wait();
  start_time_ = Clock::now();
  const double client_cpu_start = ClientCpuSeconds();
  std::optional<ProcessUsage> usage_start;
  if (coordinator_pid_ > 0) {
    absl::StatusOr<ProcessUsage> usage = ReadProcessUsage(coordinator_pid_);
    if (usage.ok()) usage_start = *usage;
  }
  go_.count_down();
  for (std::thread& thread : threads) thread.join();

  const double elapsed_s = static_cast<double>(last_finish_ns_.load()) / 1e9;
  const double client_cpu_s = ClientCpuSeconds() - client_cpu_start;
  std::optional<ProcessUsage> usage_end;
  if (coordinator_pid_ > 0) {
    absl::StatusOr<ProcessUsage> usage = ReadProcessUsage(coordinator_pid_);
    if (usage.ok()) usage_end = *usage;
  }
  if (failed_.load()) {
    std::cerr << "load_gen: " << first_error_ << "\n";
    return 1;
  }
  return Report(elapsed_s, usage_start, usage_end, client_cpu_s);
}

bool LoadRun::CheckSweepCompleted() {
  std::unique_ptr<v1::SweepService::Stub> stub = v1::SweepService::NewStub(NewChannel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id_);
  v1::Sweep sweep;
  const grpc::Status status = stub->GetSweep(&context, request, &sweep);
  if (!status.ok()) {
    std::cerr << "load_gen: GetSweep failed (" << Describe(status) << ")\n";
    return false;
  }
  if (sweep.state() != v1::SWEEP_STATE_COMPLETED || sweep.counts().completed() != sweep_trials_) {
    std::cerr << "load_gen: sweep " << sweep_id_ << " is " << v1::SweepState_Name(sweep.state())
              << " with " << sweep.counts().completed() << " of " << sweep_trials_
              << " trials completed; expected all completed\n";
    return false;
  }
  return true;
}

int LoadRun::Report(double elapsed_s, const std::optional<ProcessUsage>& usage_start,
                    const std::optional<ProcessUsage>& usage_end, double client_cpu_s) {
  WorkerRecord all;
  for (WorkerRecord& record : records_) {
    all.acquire_ms.insert(all.acquire_ms.end(), record.acquire_ms.begin(), record.acquire_ms.end());
    all.stream_ms.insert(all.stream_ms.end(), record.stream_ms.begin(), record.stream_ms.end());
    all.finish_ms.insert(all.finish_ms.end(), record.finish_ms.begin(), record.finish_ms.end());
    all.empty_acquires += record.empty_acquires;
  }
  const int64_t trials = finished_.load();
  const int64_t rows = trials * options_.epochs * options_.metrics_per_epoch;
  std::printf("load_gen: workers=%d trials=%lld rows_per_trial=%d epoch_ms=%d elapsed_s=%.3f\n",
              options_.workers, static_cast<long long>(trials),
              options_.epochs * options_.metrics_per_epoch, options_.epoch_ms, elapsed_s);
  std::printf("throughput: trials_per_s=%.1f metric_rows_per_s=%.0f\n", trials / elapsed_s,
              rows / elapsed_s);
  auto print_latency = [](const char* name, std::vector<double>& values) {
    std::printf("%s: p50=%.3f p99=%.3f max=%.3f n=%zu\n", name, Percentile(values, 50),
                Percentile(values, 99), Percentile(values, 100), values.size());
  };
  print_latency("acquire_ms", all.acquire_ms);
  print_latency("stream_ms", all.stream_ms);
  print_latency("finish_ms", all.finish_ms);
  std::printf("empty_acquires: %lld\n", static_cast<long long>(all.empty_acquires));
  std::printf("load_gen_cpu: cpu_s=%.2f\n", client_cpu_s);
  if (usage_start && usage_end) {
    const double cpu_s = usage_end->cpu_seconds - usage_start->cpu_seconds;
    std::printf("coordinator: cpu_s=%.2f cpu_ms_per_trial=%.3f rss_mib=%.1f peak_rss_mib=%.1f\n",
                cpu_s, 1000.0 * cpu_s / static_cast<double>(trials), usage_end->rss_kib / 1024.0,
                usage_end->peak_rss_kib / 1024.0);
    std::printf("coordinator_rss_mib: after_submit=%.1f", usage_start->rss_kib / 1024.0);
    for (const auto& [percent, rss_kib] : rss_samples_kib_) {
      std::printf(" at_%d%%=%.1f", percent, rss_kib / 1024.0);
    }
    std::printf("\n");
  }
  std::fflush(stdout);
  return CheckSweepCompleted() ? 0 : 1;
}

int Main(const Options& options) {
  std::optional<TempDir> temp_dir;
  std::unique_ptr<CoordinatorProcess> coordinator;
  std::string address = options.coordinator;
  pid_t coordinator_pid = options.coordinator_pid;
  if (!options.coordinator_binary.empty()) {
    temp_dir.emplace("sweep-load-gen");
    const std::filesystem::path db =
        options.db.empty() ? temp_dir->path() / "sweep.db" : std::filesystem::path(options.db);
    const std::filesystem::path log = temp_dir->path() / "coordinator.log";
    absl::StatusOr<std::unique_ptr<CoordinatorProcess>> started = CoordinatorProcess::Start(
        options.coordinator_binary, db, log, options.coordinator_log_level);
    if (!started.ok()) {
      temp_dir->keep();
      std::cerr << "load_gen: " << started.status().message() << "\n";
      return 1;
    }
    coordinator = *std::move(started);
    address = coordinator->address();
    coordinator_pid = coordinator->pid();
  }

  LoadRun run(options, address, coordinator_pid);
  const int code = run.Run();
  if (coordinator != nullptr && coordinator->Stop() != 0) {
    std::cerr << "load_gen: coordinator did not exit cleanly on SIGTERM\n";
  }
  if (code != 0 && temp_dir) {
    temp_dir->keep();
    std::cerr << "load_gen: coordinator log and database kept in " << temp_dir->path() << "\n";
  } else if (temp_dir && options.keep) {
    temp_dir->keep();
    std::printf("kept: %s\n", temp_dir->path().c_str());
  }
  return code;
}

}  // namespace
}  // namespace sweep::bench

int main(int argc, char** argv) {
  sweep::bench::Options options;
  CLI::App app{"load_gen: coordinator throughput under simulated workers"};
  app.add_option("--workers", options.workers, "simulated worker threads, one channel each")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--trials", options.trials, "trials in the submitted sweep")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  app.add_option("--epochs", options.epochs, "stream updates per trial (one per epoch)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--metrics-per-epoch", options.metrics_per_epoch, "metric rows per update")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));

  app.add_option("--acquire-wait-ms", options.acquire_wait_ms,
                 "wait_ms of AcquireTrial long polls (the worker's default is 10 s)")
      ->capture_default_str()
      ->check(CLI::Range(0, 30'000));
  app.add_option("--epoch-ms", options.epoch_ms,
                 "simulated training time after each epoch's update, in milliseconds; 0 runs "
                 "the workers back to back, which saturates the coordinator")
      ->capture_default_str()
      ->check(CLI::Range(0, 600'000));
  app.add_option("--seed", options.seed, "seed of the sweep and of the metric values")
      ->capture_default_str();

  auto* address = app.add_option("--coordinator", options.coordinator,
                                 "host:port of a running coordinator (loopback)");
  app.add_option("--coordinator-pid", options.coordinator_pid,
                 "process id of the running coordinator, to read its CPU time and memory")
      ->needs(address);
  auto* binary = app.add_option("--coordinator-binary", options.coordinator_binary,
                                "sweep-coordinator program to start on 127.0.0.1:0")
                     ->excludes(address);
  app.add_option("--db", options.db,
                 "SQLite file for the started coordinator; default a fresh temporary file")
      ->needs(binary);
  app.add_option("--coordinator-log-level", options.coordinator_log_level,
                 "--log-level of the started coordinator")
      ->capture_default_str()
      ->needs(binary);
  app.add_flag("--keep", options.keep, "keep the temporary directory with the database and log")
      ->needs(binary);
  CLI11_PARSE(app, argc, argv);

  if (options.coordinator.empty() && options.coordinator_binary.empty()) {
    std::cerr << "load_gen: pass --coordinator ADDRESS or --coordinator-binary PATH\n";
    return 2;
  }
  return sweep::bench::Main(options);
}
