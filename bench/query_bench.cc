// query_bench: latency of the coordinator's read queries on a large sweep.
//
// Fills an SQLite file with one sweep of --trials COMPLETED trials and --rows-per-trial
// metric rows each (the coordinator's schema, created through Store), starts a real
// sweep-coordinator on it, and times two calls over gRPC on loopback:
// - ListTrials sorted by val_accuracy with limit 20, which `sweep trials --limit 20` sends;
// - GetSweep, which `sweep status SWEEP` sends.
// Prints p50, p99 and max in milliseconds for each.
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "CLI/CLI.hpp"
#include "bench/load_support.h"
#include "common/search_space.h"
#include "common/value.h"
#include "nlohmann/json.hpp"
#include "server/sqlite.h"
#include "server/store.h"
#include "spdlog/spdlog.h"
#include "sweep/v1/sweep.grpc.pb.h"

namespace sweep::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int64_t trials = 100'000;
  int rows_per_trial = 40;
  int calls = 200;
  double max_seconds = 120;
  std::string coordinator_binary;
  std::string db;
  bool reuse_db = false;
};

// The grid load_gen submits, with 5 epochs.
constexpr const char* kGridJson =
    R"({"augmentation":["none","flip_crop"],"batch_size":[64,128],)"
    R"("keep_prob":[0.5,1.0],"learning_rate":[0.001,0.01],"num_epochs":[5],)";

std::string GridJson() {
  std::string range;
  for (int i = 1; i <= 100; ++i) range += (i > 1 ? "," : "") + std::to_string(i);
  return std::string(kGridJson) + "\"conv1_depth\":[" + range + "],\"conv2_depth\":[" + range +
         "],\"dense_layer_units\":[" + range + "]}";
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Creates the schema and the sweep's PENDING trials through the coordinator's own Store.
absl::StatusOr<int64_t> CreateSweep(const std::filesystem::path& db, int64_t trials) {
  absl::StatusOr<Grid> grid = Grid::Parse(GridJson());
  if (!grid.ok()) return grid.status();
  absl::StatusOr<std::vector<Assignment>> sample = SampleCombinations(*grid, trials, 1);
  if (!sample.ok()) return sample.status();
  std::vector<std::string> params;
  params.reserve(sample->size());
  for (const Assignment& assignment : *sample) params.push_back(CanonicalJson(assignment));

  absl::StatusOr<std::unique_ptr<server::Store>> store = server::Store::Open(db.string());
  if (!store.ok()) return store.status();
  server::NewSweep sweep{.name = "query_bench",
                         .grid_json = grid->CanonicalJson(),
                         .grid_size = trials,
                         .seed = 1,
                         .combination_count = grid->CombinationCountDecimal(),
                         .max_attempts = 3};
  return (*store)->CreateSweep(sweep, params, NowUnixMs());
}

std::string FinalMetricsJson(double best_val_accuracy, int best_epoch) {
  // The LibTorch trainer's final metrics, and the val_accuracy (equal to
  // best_val_accuracy) that the worker adds to them.
  nlohmann::json object = {{"best_epoch", best_epoch},
                           {"best_val_accuracy", best_val_accuracy},
                           {"best_val_loss", 1.0 - best_val_accuracy},
                           {"test_accuracy", best_val_accuracy - 0.01},
                           {"test_loss", 1.0 - best_val_accuracy},
                           {"train_seconds", 60.0},
                           {"val_accuracy", best_val_accuracy}};
  return object.dump();
}

// Marks every trial of the sweep COMPLETED and writes its metric rows, in one transaction
// with prepared statements.
absl::Status CompleteTrials(const std::filesystem::path& db_path, int64_t sweep_id,
                            int rows_per_trial) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) {
    absl::Status error =
        server::SqliteError(db, sqlite3_errcode(db), "opening " + db_path.string());
    sqlite3_close(db);
    return error;
  }
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> closer(db, &sqlite3_close);
  if (absl::Status status = server::Execute(db, "PRAGMA synchronous = OFF; BEGIN"); !status.ok()) {
    return status;
  }

  std::vector<int64_t> ids;
  {
    server::Statement select(db, "SELECT id FROM trials WHERE sweep_id = ? ORDER BY ordinal");
    select.Bind(1, sweep_id);
    while (true) {
      absl::StatusOr<bool> row = select.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ids.push_back(select.ColumnInt(0));
    }
  }
  const std::vector<std::string> names = {"train_loss",        "train_accuracy", "val_loss",
                                          "val_accuracy",      "learning_rate",  "epoch_seconds",
                                          "images_per_second", "gradient_norm"};
  server::Statement update(db,
                           "UPDATE trials SET state = 3, attempt = 1, worker_id = ?, "
                           "started_ms = ?, finished_ms = ?, acked_seq = ?, val_accuracy = ?, "
                           "final_metrics_json = ?, failure_reason = '', checkpoint_path = '' "
                           "WHERE id = ?");
  server::Statement insert(db,
                           "INSERT INTO metrics (trial_id, attempt, seq, epoch, step, name, "
                           "value) VALUES (?, 1, ?, ?, ?, ?, ?)");
  std::mt19937_64 random(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const int64_t now = NowUnixMs();
  const int per_epoch = static_cast<int>(names.size());
  for (int64_t id : ids) {
    const double best = unit(random);
    const int epochs = (rows_per_trial + per_epoch - 1) / per_epoch;
    update.Reset()
        .Bind(1, id % 16 + 1)
        .Bind(2, now - 60'000)
        .Bind(3, now)
        .Bind(4, int64_t{rows_per_trial})
        .Bind(5, best)
        .Bind(6, FinalMetricsJson(best, epochs))
        .Bind(7, id);
    if (absl::Status status = update.Run(); !status.ok()) return status;
    for (int seq = 1; seq <= rows_per_trial; ++seq) {
      const int epoch = (seq - 1) / per_epoch + 1;
      insert.Reset()
          .Bind(1, id)
          .Bind(2, int64_t{seq})
          .Bind(3, int64_t{epoch})
          .Bind(4, int64_t{epoch} * 469)
          .Bind(5, names[(seq - 1) % per_epoch])
          .Bind(6, unit(random));
      if (absl::Status status = insert.Run(); !status.ok()) return status;
    }
  }
  return server::Execute(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)");
}

// Finds the sweep of a database filled by an earlier run.
absl::StatusOr<int64_t> ExistingSweep(const std::filesystem::path& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return absl::NotFoundError("failed to open " + db_path.string() +
                               " read-only; run once without --reuse-db to fill it");
  }
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> closer(db, &sqlite3_close);
  server::Statement select(db, "SELECT MAX(id) FROM sweeps WHERE name = 'query_bench'");
  absl::StatusOr<bool> row = select.Step();
  if (!row.ok()) return row.status();
  if (!*row || select.ColumnIsNull(0)) {
    return absl::NotFoundError(db_path.string() +
                               " has no query_bench sweep; run once without --reuse-db to fill it");
  }
  return select.ColumnInt(0);
}

struct Timing {
  std::vector<double> ms;
  std::string error;
};

// Calls `call` up to `calls` times or until `max_seconds` pass, after 3 untimed calls.
template <typename Call>
Timing TimeCalls(int calls, double max_seconds, Call call) {
  Timing timing;
  for (int i = 0; i < 3; ++i) call();
  const auto stop = Clock::now() + std::chrono::duration<double>(max_seconds);
  for (int i = 0; i < calls && Clock::now() < stop; ++i) {
    const auto begin = Clock::now();
    std::string error = call();
    timing.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - begin).count());
    if (!error.empty()) {
      timing.error = error;
      break;
    }
  }
  return timing;
}

bool PrintTiming(const char* name, Timing& timing) {
  if (!timing.error.empty()) {
    std::cerr << "query_bench: " << name << " failed: " << timing.error << "\n";
    return false;
  }
  std::printf("%s: p50=%.3f p99=%.3f max=%.3f n=%zu\n", name, Percentile(timing.ms, 50),
              Percentile(timing.ms, 99), Percentile(timing.ms, 100), timing.ms.size());
  return true;
}

absl::StatusOr<int64_t> PrepareDatabase(const Options& options, const std::filesystem::path& db) {
  if (options.reuse_db && std::filesystem::exists(db)) {
    absl::StatusOr<int64_t> sweep_id = ExistingSweep(db);
    if (sweep_id.ok()) {
      std::printf("database: reused %s (%.0f MiB)\n", db.c_str(),
                  std::filesystem::file_size(db) / 1048576.0);
    }
    return sweep_id;
  }
  std::filesystem::remove(db);
  const auto begin = Clock::now();
  absl::StatusOr<int64_t> sweep_id = CreateSweep(db, options.trials);
  if (!sweep_id.ok()) return sweep_id.status();
  if (absl::Status status = CompleteTrials(db, *sweep_id, options.rows_per_trial); !status.ok()) {
    return status;
  }
  std::printf("database: filled %s with %lld trials and %lld metric rows in %.1f s (%.0f MiB)\n",
              db.c_str(), static_cast<long long>(options.trials),
              static_cast<long long>(options.trials * options.rows_per_trial),
              std::chrono::duration<double>(Clock::now() - begin).count(),
              std::filesystem::file_size(db) / 1048576.0);
  return sweep_id;
}

int Main(const Options& options) {
  TempDir temp_dir("sweep-query-bench");
  const std::filesystem::path db =
      options.db.empty() ? temp_dir.path() / "sweep.db" : std::filesystem::path(options.db);
  absl::StatusOr<int64_t> sweep_id = PrepareDatabase(options, db);
  if (!sweep_id.ok()) {
    std::cerr << "query_bench: preparing " << db << " failed: " << sweep_id.status().message()
              << "\n";
    return 1;
  }

  absl::StatusOr<std::unique_ptr<CoordinatorProcess>> coordinator = CoordinatorProcess::Start(
      options.coordinator_binary, db, temp_dir.path() / "coordinator.log", "info");
  if (!coordinator.ok()) {
    temp_dir.keep();
    std::cerr << "query_bench: " << coordinator.status().message() << "\n";
    return 1;
  }
  std::unique_ptr<v1::SweepService::Stub> stub = v1::SweepService::NewStub(
      grpc::CreateChannel((*coordinator)->address(), grpc::InsecureChannelCredentials()));

  v1::ListTrialsRequest list_request;
  list_request.set_sweep_id(*sweep_id);
  list_request.set_sort_by("val_accuracy");
  list_request.set_limit(20);
  Timing list = TimeCalls(options.calls, options.max_seconds, [&]() -> std::string {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::ListTrialsResponse response;
    const grpc::Status status = stub->ListTrials(&context, list_request, &response);
    if (!status.ok()) return status.error_message();
    if (response.trials_size() != 20) {
      return "returned " + std::to_string(response.trials_size()) + " trials instead of 20";
    }
    return "";
  });

  v1::GetSweepRequest get_request;
  get_request.set_sweep_id(*sweep_id);
  Timing get = TimeCalls(options.calls, options.max_seconds, [&]() -> std::string {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::Sweep response;
    const grpc::Status status = stub->GetSweep(&context, get_request, &response);
    if (!status.ok()) return status.error_message();
    if (response.counts().completed() != options.trials) {
      return "counts " + std::to_string(response.counts().completed()) + " completed trials";
    }
    return "";
  });

  absl::StatusOr<ProcessUsage> usage = ReadProcessUsage((*coordinator)->pid());
  const bool list_ok = PrintTiming("list_trials_top20_ms", list);
  const bool get_ok = PrintTiming("get_sweep_ms", get);
  if (usage.ok()) {
    std::printf("coordinator: cpu_s=%.2f peak_rss_mib=%.1f\n", usage->cpu_seconds,
                usage->peak_rss_kib / 1024.0);
  }
  return list_ok && get_ok ? 0 : 1;
}

}  // namespace
}  // namespace sweep::bench

int main(int argc, char** argv) {
  sweep::bench::Options options;
  CLI::App app{"query_bench: latency of ListTrials and GetSweep on a large sweep"};
  app.add_option("--trials", options.trials, "completed trials in the sweep")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{20}, int64_t{1'000'000}));
  app.add_option("--rows-per-trial", options.rows_per_trial, "metric rows stored per trial")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000));
  app.add_option("--calls", options.calls, "timed calls of each query")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--max-seconds", options.max_seconds,
                 "stop timing a query after this many seconds, with fewer calls")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--coordinator-binary", options.coordinator_binary,
                 "sweep-coordinator program to start on 127.0.0.1:0")
      ->required();
  app.add_option("--db", options.db, "SQLite file to fill; default a temporary file");
  app.add_flag("--reuse-db", options.reuse_db,
               "time the queries on the --db an earlier run filled, without filling it again");
  CLI11_PARSE(app, argc, argv);
  // Keeps Store's schema migration message out of the results.
  spdlog::set_level(spdlog::level::warn);
  return sweep::bench::Main(options);
}
