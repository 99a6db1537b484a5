#include "server/store.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/hyperparameters.h"
#include "common/logging.h"
#include "common/params_proto.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace sweep::server {
namespace {

// Each entry migrates the schema from version i to i + 1.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE sweeps (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  grid_json TEXT NOT NULL,
  grid_size INTEGER NOT NULL,
  seed INTEGER NOT NULL,
  combination_count TEXT NOT NULL,
  parent_sweep_id INTEGER REFERENCES sweeps(id),
  max_attempts INTEGER NOT NULL,
  stopping_rule BLOB,
  max_concurrent_trials INTEGER NOT NULL DEFAULT 0,
  cancelled INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL
);
CREATE TABLE trials (
  id INTEGER PRIMARY KEY,
  sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
  ordinal INTEGER NOT NULL,
  params_json TEXT NOT NULL,
  state INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  worker_id INTEGER,
  lease_expires_ms INTEGER,
  acked_seq INTEGER NOT NULL DEFAULT 0,
  epoch INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER,
  val_accuracy REAL,
  final_metrics_json TEXT,
  failure_reason TEXT,
  checkpoint_path TEXT,
  stop_reason TEXT,
  UNIQUE (sweep_id, ordinal),
  UNIQUE (sweep_id, params_json)
);
CREATE INDEX trials_by_state ON trials (state, sweep_id, ordinal);
CREATE INDEX trials_by_val_accuracy ON trials (sweep_id, val_accuracy DESC, ordinal);
CREATE TABLE sweep_state_counts (
  sweep_id INTEGER NOT NULL,
  state INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (sweep_id, state)
) WITHOUT ROWID;
CREATE TRIGGER trials_counted_on_insert AFTER INSERT ON trials BEGIN
  INSERT INTO sweep_state_counts (sweep_id, state, count) VALUES (NEW.sweep_id, NEW.state, 1)
    ON CONFLICT (sweep_id, state) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER trials_counted_on_update AFTER UPDATE OF state ON trials
    WHEN OLD.state != NEW.state BEGIN
  UPDATE sweep_state_counts SET count = count - 1
    WHERE sweep_id = OLD.sweep_id AND state = OLD.state;
  INSERT INTO sweep_state_counts (sweep_id, state, count) VALUES (NEW.sweep_id, NEW.state, 1)
    ON CONFLICT (sweep_id, state) DO UPDATE SET count = count + 1;
END;
CREATE TABLE metrics (
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  attempt INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  step INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL,
  PRIMARY KEY (trial_id, attempt, seq)
) WITHOUT ROWID;
CREATE TABLE workers (
  id INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  device TEXT NOT NULL,
  registered_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  current_trial_id INTEGER
);
)sql",
};

static_assert(std::size(kMigrations) == kSchemaVersion);

constexpr const char* kTrialColumns =
    "id, sweep_id, ordinal, params_json, state, attempt, worker_id, created_ms, started_ms, "
    "finished_ms, final_metrics_json, failure_reason, checkpoint_path, epoch";

bool IsFinal(int state) {
  return state == v1::TRIAL_STATE_COMPLETED || state == v1::TRIAL_STATE_FAILED ||
         state == v1::TRIAL_STATE_CANCELLED || state == v1::TRIAL_STATE_STOPPED;
}

// Commits on success and rolls back otherwise, unless Commit was called.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { status_ = Execute(db_, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (status_.ok() && !done_) Execute(db_, "ROLLBACK").IgnoreError();
  }
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    done_ = true;
    return Execute(db_, "COMMIT");
  }

 private:
  sqlite3* db_;
  absl::Status status_;
  bool done_ = false;
};

#define SWEEP_RETURN_IF_ERROR(expr)                \
  do {                                             \
    absl::Status status_macro_ = (expr);           \
    if (!status_macro_.ok()) return status_macro_; \
  } while (false)

std::string MetricsToJson(const std::vector<std::pair<std::string, double>>& metrics) {
  nlohmann::json object = nlohmann::json::object();
  // NaN and infinities become JSON null, which reads back as NaN.
  for (const auto& [name, value] : metrics) object[name] = value;
  return object.dump();
}

void AddMetricsFromJson(const std::string& json_text, v1::Trial& trial) {
  if (json_text.empty()) return;
  nlohmann::json object = nlohmann::json::parse(json_text, nullptr, false);
  if (!object.is_object()) return;
  for (const auto& [name, value] : object.items()) {
    v1::Metric* metric = trial.add_metrics();
    metric->set_name(name);
    metric->set_value(value.is_number() ? value.get<double>()
                                        : std::numeric_limits<double>::quiet_NaN());
  }
}

// SplitMix64's output function: a bijective mix of 64 bits.
uint64_t Mix64(uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

uint64_t TrialSeed(uint64_t sweep_seed, uint64_t ordinal) {
  return Mix64(sweep_seed ^ Mix64(ordinal));
}

std::string StateName(int state) {
  return v1::TrialState_Name(static_cast<v1::TrialState>(state)).substr(12);
}

// Builds the grant of a pending trial from a row that starts with its id, attempt, sweep id,
// params JSON and ordinal.
LeaseGrant GrantFromRow(const Statement& row, uint64_t sweep_seed, int64_t lease_expires_ms) {
  LeaseGrant grant;
  grant.trial_id = row.ColumnInt(0);
  grant.attempt = static_cast<int32_t>(row.ColumnInt(1)) + 1;
  grant.sweep_id = row.ColumnInt(2);
  grant.params_json = row.ColumnText(3);
  grant.trial_seed = TrialSeed(sweep_seed, static_cast<uint64_t>(row.ColumnInt(4)));
  grant.lease_expires_ms = lease_expires_ms;
  return grant;
}

// Parses a trial's stored params JSON into hyperparameters.
absl::StatusOr<Hyperparameters> HyperparametersFromJson(const std::string& params_json) {
  absl::StatusOr<Assignment> assignment = AssignmentFromJson(params_json);
  if (!assignment.ok()) return assignment.status();
  return HyperparametersFromAssignment(*assignment);
}

}  // namespace

struct Store::Statements {
  explicit Statements(sqlite3* db)
      : insert_sweep(db,
                     "INSERT INTO sweeps (name, grid_json, grid_size, seed, combination_count, "
                     "parent_sweep_id, max_attempts, created_ms, stopping_rule, "
                     "max_concurrent_trials) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        insert_trial(db,
                     "INSERT INTO trials (sweep_id, ordinal, params_json, state, created_ms) "
                     "VALUES (?, ?, ?, 1, ?)"),
        select_sweep(db,
                     "SELECT id, name, grid_json, grid_size, seed, combination_count, "
                     "parent_sweep_id, cancelled, created_ms, stopping_rule, "
                     "max_concurrent_trials FROM sweeps WHERE id = ?"),
        select_sweeps(db,
                      "SELECT id, name, grid_json, grid_size, seed, combination_count, "
                      "parent_sweep_id, cancelled, created_ms, stopping_rule, "
                      "max_concurrent_trials FROM sweeps ORDER BY id"),
        // Triggers keep these counts, so a sweep's status costs a few rows at any size.
        count_states(db, "SELECT state, count FROM sweep_state_counts WHERE sweep_id = ?"),
        select_trial(db, std::string("SELECT ") + kTrialColumns + " FROM trials WHERE id = ?"),
        latest_metrics(db,
                       "SELECT name, value FROM metrics WHERE trial_id = ? AND attempt = ? "
                       "ORDER BY seq"),
        trial_history(db,
                      "SELECT attempt, seq, epoch, step, name, value FROM metrics "
                      "WHERE trial_id = ? ORDER BY attempt, seq"),
        insert_worker(db,
                      "INSERT INTO workers (host, device, registered_ms, last_seen_ms) "
                      "VALUES (?, ?, ?, ?)"),
        touch_worker(db, "UPDATE workers SET last_seen_ms = ?, current_trial_id = ? WHERE id = ?"),
        touch_worker_seen(db, "UPDATE workers SET last_seen_ms = ? WHERE id = ?"),
        select_workers(db,
                       "SELECT id, host, device, current_trial_id, last_seen_ms, registered_ms "
                       "FROM workers ORDER BY id"),
        // Fair share: the sweep with pending trials and the fewest running ones goes first,
        // older sweeps break ties, and a sweep at its concurrency limit waits.
        next_sweep(db,
                   "SELECT s.id, s.max_concurrent_trials, IFNULL(r.count, 0) "
                   "FROM sweep_state_counts p JOIN sweeps s ON s.id = p.sweep_id "
                   "LEFT JOIN sweep_state_counts r ON r.sweep_id = p.sweep_id AND r.state = 2 "
                   "WHERE p.state = 1 AND p.count > 0 AND (s.max_concurrent_trials = 0 "
                   "OR IFNULL(r.count, 0) < s.max_concurrent_trials) "
                   "ORDER BY IFNULL(r.count, 0), s.id LIMIT 1"),
        fusable_pending(
            db,
            "SELECT id, attempt, sweep_id, params_json, ordinal FROM (SELECT id, attempt, "
            "sweep_id, params_json, ordinal FROM trials WHERE state = 1 AND sweep_id = ?1 "
            "AND id != ?2 "
            "ORDER BY ordinal LIMIT " +
                std::to_string(kFusionWindow) +
                ") "
                "WHERE json_extract(params_json, '$.conv1_depth') IS json_extract(?3, "
                "'$.conv1_depth') "
                "AND json_extract(params_json, '$.conv2_depth') IS json_extract(?3, "
                "'$.conv2_depth') "
                "AND json_extract(params_json, '$.dense_layer_units') IS "
                "json_extract(?3, '$.dense_layer_units') "
                "AND json_extract(params_json, '$.batch_size') IS json_extract(?3, '$.batch_size') "
                "ORDER BY ordinal LIMIT ?4"),
        next_pending(db,
                     "SELECT t.id, t.attempt, t.sweep_id, t.params_json, t.ordinal, s.seed "
                     "FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
                     "WHERE t.state = 1 AND t.sweep_id = ? ORDER BY t.ordinal LIMIT 1"),
        lease_trial(db,
                    "UPDATE trials SET state = 2, attempt = attempt + 1, worker_id = ?, "
                    "lease_expires_ms = ?, acked_seq = 0, started_ms = ?, stop_reason = NULL, "
                    "val_accuracy = NULL WHERE id = ?"),
        lease_state(db,
                    "SELECT state, attempt, acked_seq, sweep_id, params_json, stop_reason "
                    "FROM trials WHERE id = ?"),
        select_stopping_rule(db, "SELECT stopping_rule FROM sweeps WHERE id = ?"),
        request_stop(db,
                     "UPDATE trials SET stop_reason = ? WHERE id = ? AND attempt = ? "
                     "AND state = 2 AND stop_reason IS NULL"),
        validation_history(db,
                           "SELECT m.trial_id, m.epoch, m.value FROM metrics m "
                           "JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempt "
                           "WHERE t.sweep_id = ? AND m.name = 'val_accuracy' AND m.epoch <= ?"),
        renew_lease(db,
                    "UPDATE trials SET lease_expires_ms = ?, acked_seq = ?, "
                    "epoch = MAX(epoch, ?) WHERE id = ?"),
        set_latest_val_accuracy(db, "UPDATE trials SET val_accuracy = ? WHERE id = ?"),
        insert_metric(db,
                      "INSERT OR IGNORE INTO metrics (trial_id, attempt, seq, epoch, step, name, "
                      "value) VALUES (?, ?, ?, ?, ?, ?, ?)"),
        finish_trial(db,
                     "UPDATE trials SET state = ?, finished_ms = ?, lease_expires_ms = NULL, "
                     "val_accuracy = ?, final_metrics_json = ?, failure_reason = ?, "
                     "checkpoint_path = ? WHERE id = ?"),
        clear_worker_trial(db,
                           "UPDATE workers SET current_trial_id = NULL, last_seen_ms = ? "
                           "WHERE id = ? AND current_trial_id = ?"),
        expired(db,
                "SELECT t.id, t.attempt, s.max_attempts, t.worker_id, t.sweep_id FROM trials t "
                "JOIN sweeps s ON s.id = t.sweep_id "
                "WHERE t.state = 2 AND t.lease_expires_ms < ?"),
        requeue(db,
                "UPDATE trials SET state = 1, worker_id = NULL, lease_expires_ms = NULL, "
                "epoch = 0 WHERE id = ?"),
        fail_trial(db,
                   "UPDATE trials SET state = 4, finished_ms = ?, lease_expires_ms = NULL, "
                   "failure_reason = ? WHERE id = ?"),
        cancel_sweep_flag(db, "UPDATE sweeps SET cancelled = 1 WHERE id = ?"),
        cancel_trials(db,
                      "UPDATE trials SET state = 5, finished_ms = ?, lease_expires_ms = NULL, "
                      "failure_reason = 'cancelled' WHERE sweep_id = ? AND state = ? "
                      "AND (? = 0 OR id = ?)"),
        running_ids(db, "SELECT id FROM trials WHERE sweep_id = ? AND state = 2 ORDER BY id") {}

  Statement insert_sweep;
  Statement insert_trial;
  Statement select_sweep;
  Statement select_sweeps;
  Statement count_states;
  Statement select_trial;
  Statement latest_metrics;
  Statement trial_history;
  Statement insert_worker;
  Statement touch_worker;
  Statement touch_worker_seen;
  Statement select_workers;
  Statement next_sweep;
  Statement next_pending;
  Statement fusable_pending;
  Statement lease_trial;
  Statement lease_state;
  Statement select_stopping_rule;
  Statement request_stop;
  Statement validation_history;
  Statement renew_lease;
  Statement set_latest_val_accuracy;
  Statement insert_metric;
  Statement finish_trial;
  Statement clear_worker_trial;
  Statement expired;
  Statement requeue;
  Statement fail_trial;
  Statement cancel_sweep_flag;
  Statement cancel_trials;
  Statement running_ids;

  absl::Status PrepareStatus() const {
    for (const Statement* statement : {&insert_sweep,
                                       &insert_trial,
                                       &select_sweep,
                                       &select_sweeps,
                                       &count_states,
                                       &select_trial,
                                       &latest_metrics,
                                       &trial_history,
                                       &insert_worker,
                                       &touch_worker,
                                       &touch_worker_seen,
                                       &select_workers,
                                       &next_sweep,
                                       &next_pending,
                                       &fusable_pending,
                                       &lease_trial,
                                       &lease_state,
                                       &select_stopping_rule,
                                       &request_stop,
                                       &validation_history,
                                       &renew_lease,
                                       &set_latest_val_accuracy,
                                       &insert_metric,
                                       &finish_trial,
                                       &clear_worker_trial,
                                       &expired,
                                       &requeue,
                                       &fail_trial,
                                       &cancel_sweep_flag,
                                       &cancel_trials,
                                       &running_ids}) {
      if (!statement->prepare_status().ok()) return statement->prepare_status();
    }
    return absl::OkStatus();
  }
};

Store::Store(sqlite3* db) : db_(db) {}

Store::~Store() {
  statements_.reset();
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int code = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (code != SQLITE_OK) {
    absl::Status error = SqliteError(db, code, "opening database \"" + path + "\"");
    sqlite3_close(db);
    return error;
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  SWEEP_RETURN_IF_ERROR(Execute(db, "PRAGMA journal_mode = WAL"));
  SWEEP_RETURN_IF_ERROR(Execute(db, "PRAGMA synchronous = NORMAL"));
  SWEEP_RETURN_IF_ERROR(Execute(db, "PRAGMA foreign_keys = ON"));
  SWEEP_RETURN_IF_ERROR(store->Migrate());
  std::lock_guard lock(store->mutex_);
  store->statements_ = std::make_unique<Statements>(db);
  SWEEP_RETURN_IF_ERROR(store->statements_->PrepareStatus());
  return store;
}

absl::Status Store::Migrate() {
  Statement version_query(db_, "PRAGMA user_version");
  absl::StatusOr<bool> row = version_query.Step();
  if (!row.ok()) return row.status();
  const int64_t version = version_query.ColumnInt(0);
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        "database schema version " + std::to_string(version) + " is newer than this release's " +
        std::to_string(kSchemaVersion) + "; run a newer sweep-coordinator");
  }
  for (int64_t next = version; next < kSchemaVersion; ++next) {
    Transaction transaction(db_);
    SWEEP_RETURN_IF_ERROR(transaction.status());
    SWEEP_RETURN_IF_ERROR(Execute(db_, kMigrations[next]));
    SWEEP_RETURN_IF_ERROR(Execute(db_, "PRAGMA user_version = " + std::to_string(next + 1)));
    SWEEP_RETURN_IF_ERROR(transaction.Commit());
    spdlog::info("migrated database schema to version {}", next + 1);
  }
  return absl::OkStatus();
}

absl::Status Store::RunWrite(absl::FunctionRef<absl::Status()> body) {
  WriteJob job{body};
  std::unique_lock lock(queue_mutex_);
  queue_.push_back(&job);
  while (!job.done) {
    if (committing_) {
      job.wake.wait(lock);
      continue;
    }
    // No group is being stored: this thread stores every write queued so far, its own included.
    committing_ = true;
    std::vector<WriteJob*> batch;
    batch.swap(queue_);
    lock.unlock();
    CommitBatch(batch);
    lock.lock();
    committing_ = false;
    // Each waiter has its own condition variable, so that a commit wakes only the writers
    // it stored and the next leader.
    for (WriteJob* done : batch) {
      done->done = true;
      if (done != &job) done->wake.notify_one();
    }
    if (!queue_.empty()) queue_.front()->wake.notify_one();
  }
  return job.status;
}

template <typename T>
absl::StatusOr<T> Store::Write(absl::FunctionRef<absl::StatusOr<T>()> body) {
  std::optional<absl::StatusOr<T>> result;
  absl::Status status = RunWrite([&] {
    result = body();
    return result->status();
  });
  if (!status.ok()) return status;
  return *std::move(result);
}

void Store::CommitBatch(const std::vector<WriteJob*>& batch) {
  std::lock_guard lock(mutex_);
  // Jobs from `first` on belong to the open transaction.
  size_t first = 0;
  // Fails the jobs of the open transaction that had succeeded, because it was rolled back.
  auto fail_transaction = [&](size_t end, const absl::Status& error) {
    for (size_t i = first; i < end; ++i) {
      if (batch[i]->status.ok()) batch[i]->status = error;
    }
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    WriteJob& job = *batch[i];
    if (sqlite3_get_autocommit(db_) != 0) {
      job.status = Execute(db_, "BEGIN IMMEDIATE");
      if (!job.status.ok()) continue;
      first = i;
    }
    job.status = Execute(db_, "SAVEPOINT write");
    if (!job.status.ok()) continue;
    job.status = job.body();
    if (job.status.ok()) job.status = Execute(db_, "RELEASE write");
    if (sqlite3_get_autocommit(db_) != 0) {
      // SQLite rolls back the whole transaction on some errors (a full disk, an I/O error).
      fail_transaction(i, job.status);
    } else if (!job.status.ok()) {
      Execute(db_, "ROLLBACK TO write; RELEASE write").IgnoreError();
    }
  }
  if (sqlite3_get_autocommit(db_) == 0) {
    absl::Status commit = Execute(db_, "COMMIT");
    if (!commit.ok()) {
      Execute(db_, "ROLLBACK").IgnoreError();
      fail_transaction(batch.size(), commit);
    }
  }
}

absl::StatusOr<int64_t> Store::CreateSweep(const NewSweep& sweep,
                                           const std::vector<std::string>& trial_params,
                                           int64_t now) {
  return Write<int64_t>([&]() -> absl::StatusOr<int64_t> {
    Statement& insert_sweep = statements_->insert_sweep;
    insert_sweep.Reset()
        .Bind(1, sweep.name)
        .Bind(2, sweep.grid_json)
        .Bind(3, sweep.grid_size)
        .Bind(4, static_cast<int64_t>(sweep.seed))
        .Bind(5, sweep.combination_count)
        .Bind(6, sweep.parent_sweep_id > 0 ? std::optional<int64_t>(sweep.parent_sweep_id)
                                           : std::nullopt)
        .Bind(7, int64_t{sweep.max_attempts})
        .Bind(8, now)
        .BindBlob(9, sweep.stopping_rule)
        .Bind(10, int64_t{sweep.max_concurrent_trials});
    SWEEP_RETURN_IF_ERROR(insert_sweep.Run());
    const int64_t sweep_id = sqlite3_last_insert_rowid(db_);

    Statement& insert_trial = statements_->insert_trial;
    for (size_t ordinal = 0; ordinal < trial_params.size(); ++ordinal) {
      insert_trial.Reset()
          .Bind(1, sweep_id)
          .Bind(2, static_cast<int64_t>(ordinal))
          .Bind(3, trial_params[ordinal])
          .Bind(4, now);
      SWEEP_RETURN_IF_ERROR(insert_trial.Run());
    }
    return sweep_id;
  });
}

absl::StatusOr<v1::Sweep> Store::ReadSweep(Statement& statement) {
  v1::Sweep sweep;
  sweep.set_id(statement.ColumnInt(0));
  sweep.set_name(statement.ColumnText(1));
  sweep.set_grid_json(statement.ColumnText(2));
  sweep.set_grid_size(statement.ColumnInt(3));
  sweep.set_seed(static_cast<uint64_t>(statement.ColumnInt(4)));
  sweep.set_combination_count(statement.ColumnText(5));
  sweep.set_parent_sweep_id(statement.ColumnInt(6));
  const bool cancelled = statement.ColumnInt(7) != 0;
  sweep.set_created_unix_ms(statement.ColumnInt(8));
  if (!sweep.mutable_stopping_rule()->ParseFromString(statement.ColumnText(9))) {
    return absl::DataLossError("sweep " + std::to_string(sweep.id()) +
                               " has an unreadable stopping rule");
  }
  sweep.set_max_concurrent_trials(static_cast<int32_t>(statement.ColumnInt(10)));

  Statement& count_states = statements_->count_states;
  count_states.Reset().Bind(1, sweep.id());
  v1::StateCounts& counts = *sweep.mutable_counts();
  int64_t total = 0;
  while (true) {
    absl::StatusOr<bool> row = count_states.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const int64_t count = count_states.ColumnInt(1);
    total += count;
    switch (count_states.ColumnInt(0)) {
      case v1::TRIAL_STATE_PENDING:
        counts.set_pending(count);
        break;
      case v1::TRIAL_STATE_RUNNING:
        counts.set_running(count);
        break;
      case v1::TRIAL_STATE_COMPLETED:
        counts.set_completed(count);
        break;
      case v1::TRIAL_STATE_FAILED:
        counts.set_failed(count);
        break;
      case v1::TRIAL_STATE_CANCELLED:
        counts.set_cancelled(count);
        break;
      case v1::TRIAL_STATE_STOPPED:
        counts.set_stopped(count);
        break;
      default:
        break;
    }
  }
  sweep.set_trial_count(total);
  if (counts.pending() + counts.running() > 0) {
    sweep.set_state(v1::SWEEP_STATE_RUNNING);
  } else if (cancelled) {
    sweep.set_state(v1::SWEEP_STATE_CANCELLED);
  } else if (counts.completed() + counts.stopped() > 0) {
    sweep.set_state(v1::SWEEP_STATE_COMPLETED);
  } else {
    sweep.set_state(v1::SWEEP_STATE_FAILED);
  }
  return sweep;
}

absl::StatusOr<v1::Sweep> Store::GetSweep(int64_t sweep_id) {
  std::lock_guard lock(mutex_);
  Statement& select = statements_->select_sweep;
  select.Reset().Bind(1, sweep_id);
  absl::StatusOr<bool> row = select.Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::NotFoundError("sweep " + std::to_string(sweep_id) +
                               " not found; `sweep status` lists the sweeps");
  }
  absl::StatusOr<v1::Sweep> sweep = ReadSweep(select);
  select.Reset();
  return sweep;
}

absl::StatusOr<std::vector<v1::Sweep>> Store::ListSweeps() {
  std::lock_guard lock(mutex_);
  std::vector<v1::Sweep> sweeps;
  Statement& select = statements_->select_sweeps;
  select.Reset();
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    absl::StatusOr<v1::Sweep> sweep = ReadSweep(select);
    if (!sweep.ok()) return sweep.status();
    sweeps.push_back(*std::move(sweep));
  }
  return sweeps;
}

namespace {

absl::StatusOr<v1::Trial> ReadTrial(Statement& statement) {
  v1::Trial trial;
  trial.set_id(statement.ColumnInt(0));
  trial.set_sweep_id(statement.ColumnInt(1));
  trial.set_ordinal(statement.ColumnInt(2));
  absl::StatusOr<Assignment> assignment = AssignmentFromJson(statement.ColumnText(3));
  if (!assignment.ok()) return assignment.status();
  *trial.mutable_params() = AssignmentToProto(*assignment);
  trial.set_state(static_cast<v1::TrialState>(statement.ColumnInt(4)));
  trial.set_attempt(static_cast<int32_t>(statement.ColumnInt(5)));
  trial.set_worker_id(statement.ColumnInt(6));
  trial.set_created_unix_ms(statement.ColumnInt(7));
  trial.set_started_unix_ms(statement.ColumnInt(8));
  trial.set_finished_unix_ms(statement.ColumnInt(9));
  AddMetricsFromJson(statement.ColumnText(10), trial);
  trial.set_failure_reason(statement.ColumnText(11));
  trial.set_checkpoint_path(statement.ColumnText(12));
  trial.set_epoch(static_cast<int32_t>(statement.ColumnInt(13)));
  return trial;
}

double MetricValue(const v1::Trial& trial, const std::string& name) {
  for (const v1::Metric& metric : trial.metrics()) {
    if (metric.name() == name) return metric.value();
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

absl::Status Store::FillLatestMetrics(v1::Trial& trial) {
  // Finished trials carry their final metrics; others show the latest row of each name.
  if (trial.metrics_size() > 0 || trial.attempt() == 0) return absl::OkStatus();
  Statement& latest = statements_->latest_metrics;
  latest.Reset().Bind(1, trial.id()).Bind(2, int64_t{trial.attempt()});
  std::vector<std::pair<std::string, double>> values;
  while (true) {
    absl::StatusOr<bool> row = latest.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string name = latest.ColumnText(0);
    const double value =
        latest.ColumnIsNull(1) ? std::numeric_limits<double>::quiet_NaN() : latest.ColumnDouble(1);
    auto it = std::find_if(values.begin(), values.end(),
                           [&](const auto& entry) { return entry.first == name; });
    if (it == values.end()) {
      values.emplace_back(std::move(name), value);
    } else {
      it->second = value;
    }
  }
  for (const auto& [name, value] : values) {
    v1::Metric* metric = trial.add_metrics();
    metric->set_name(name);
    metric->set_value(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Trial>> Store::ListTrials(int64_t sweep_id, v1::TrialState state,
                                                         const std::string& sort_by,
                                                         int32_t limit) {
  std::lock_guard lock(mutex_);
  const std::string metric = sort_by.empty() ? "val_accuracy" : sort_by;
  // The val_accuracy column contains each trial's ranking value (latest while running, best
  // checkpoint once finished; NULL when not finite), so the default order and limit come
  // from the index. Other metrics are ranked in memory.
  const bool by_column = metric == "val_accuracy";
  std::string sql = std::string("SELECT ") + kTrialColumns + " FROM trials WHERE sweep_id = ?";
  if (state != v1::TRIAL_STATE_UNSPECIFIED) sql += " AND state = ?";
  sql += by_column ? " ORDER BY val_accuracy DESC, ordinal" : " ORDER BY ordinal";
  if (by_column && limit > 0) sql += " LIMIT " + std::to_string(limit);
  Statement select(db_, sql);
  select.Bind(1, sweep_id);
  if (state != v1::TRIAL_STATE_UNSPECIFIED) select.Bind(2, int64_t{state});
  std::vector<v1::Trial> trials;
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    absl::StatusOr<v1::Trial> trial = ReadTrial(select);
    if (!trial.ok()) return trial.status();
    SWEEP_RETURN_IF_ERROR(FillLatestMetrics(*trial));
    trials.push_back(*std::move(trial));
  }
  if (by_column) return trials;

  std::stable_sort(trials.begin(), trials.end(), [&](const v1::Trial& a, const v1::Trial& b) {
    const double value_a = MetricValue(a, metric);
    const double value_b = MetricValue(b, metric);
    const bool finite_a = std::isfinite(value_a);
    const bool finite_b = std::isfinite(value_b);
    if (finite_a != finite_b) return finite_a;
    return finite_a && value_a > value_b;
  });
  if (limit > 0 && trials.size() > static_cast<size_t>(limit)) trials.resize(limit);
  return trials;
}

absl::StatusOr<v1::GetTrialResponse> Store::GetTrial(int64_t trial_id) {
  std::lock_guard lock(mutex_);
  Statement& select = statements_->select_trial;
  select.Reset().Bind(1, trial_id);
  absl::StatusOr<bool> row = select.Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::NotFoundError("trial " + std::to_string(trial_id) +
                               " not found; `sweep trials SWEEP` lists a sweep's trials");
  }
  v1::GetTrialResponse response;
  absl::StatusOr<v1::Trial> trial = ReadTrial(select);
  select.Reset();
  if (!trial.ok()) return trial.status();
  SWEEP_RETURN_IF_ERROR(FillLatestMetrics(*trial));
  *response.mutable_trial() = *std::move(trial);

  Statement& history = statements_->trial_history;
  history.Reset().Bind(1, trial_id);
  while (true) {
    absl::StatusOr<bool> next = history.Step();
    if (!next.ok()) return next.status();
    if (!*next) break;
    v1::StoredMetric* stored = response.add_history();
    stored->set_attempt(static_cast<int32_t>(history.ColumnInt(0)));
    v1::MetricRow* metric_row = stored->mutable_row();
    metric_row->set_seq(history.ColumnInt(1));
    metric_row->set_epoch(static_cast<int32_t>(history.ColumnInt(2)));
    metric_row->set_step(history.ColumnInt(3));
    metric_row->set_name(history.ColumnText(4));
    metric_row->set_value(history.ColumnIsNull(5) ? std::numeric_limits<double>::quiet_NaN()
                                                  : history.ColumnDouble(5));
  }
  return response;
}

absl::StatusOr<int64_t> Store::RegisterWorker(const std::string& host, const std::string& device,
                                              int64_t now) {
  return Write<int64_t>([&]() -> absl::StatusOr<int64_t> {
    Statement& insert = statements_->insert_worker;
    insert.Reset().Bind(1, host).Bind(2, device).Bind(3, now).Bind(4, now);
    SWEEP_RETURN_IF_ERROR(insert.Run());
    return sqlite3_last_insert_rowid(db_);
  });
}

absl::StatusOr<std::vector<v1::Worker>> Store::ListWorkers() {
  std::lock_guard lock(mutex_);
  std::vector<v1::Worker> workers;
  Statement& select = statements_->select_workers;
  select.Reset();
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::Worker& worker = workers.emplace_back();
    worker.set_id(select.ColumnInt(0));
    worker.set_host(select.ColumnText(1));
    worker.set_device(select.ColumnText(2));
    worker.set_current_trial_id(select.ColumnInt(3));
    worker.set_last_seen_unix_ms(select.ColumnInt(4));
    worker.set_registered_unix_ms(select.ColumnInt(5));
  }
  return workers;
}

absl::StatusOr<std::optional<LeaseGrant>> Store::AcquireTrial(int64_t worker_id, int64_t now,
                                                              int64_t lease_ms) {
  absl::StatusOr<std::vector<LeaseGrant>> grants = AcquireTrials(worker_id, now, lease_ms, 1);
  if (!grants.ok()) return grants.status();
  if (grants->empty()) return std::nullopt;
  return grants->front();
}

absl::StatusOr<std::vector<LeaseGrant>> Store::AcquireTrials(int64_t worker_id, int64_t now,
                                                             int64_t lease_ms, int32_t max_trials) {
  return Write<std::vector<LeaseGrant>>([&]() -> absl::StatusOr<std::vector<LeaseGrant>> {
    std::vector<LeaseGrant> grants;
    Statement& touch = statements_->touch_worker_seen;
    touch.Reset().Bind(1, now).Bind(2, worker_id);
    SWEEP_RETURN_IF_ERROR(touch.Run());

    Statement& next_sweep = statements_->next_sweep;
    next_sweep.Reset();
    absl::StatusOr<bool> found = next_sweep.Step();
    if (!found.ok()) return found.status();
    if (!*found) return grants;
    const int64_t sweep_id = next_sweep.ColumnInt(0);
    const int64_t max_concurrent = next_sweep.ColumnInt(1);
    const int64_t running = next_sweep.ColumnInt(2);
    next_sweep.Reset();
    int64_t group_size = std::max<int64_t>(1, max_trials);
    if (max_concurrent > 0) group_size = std::min(group_size, max_concurrent - running);

    Statement& next = statements_->next_pending;
    next.Reset().Bind(1, sweep_id);
    absl::StatusOr<bool> row = next.Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      return absl::InternalError("sweep " + std::to_string(sweep_id) + " lost its pending trial");
    }
    const uint64_t sweep_seed = static_cast<uint64_t>(next.ColumnInt(5));
    grants.push_back(GrantFromRow(next, sweep_seed, now + lease_ms));
    next.Reset();
    if (group_size > 1) SWEEP_RETURN_IF_ERROR(FindFusableTrials(group_size, sweep_seed, grants));

    Statement& lease = statements_->lease_trial;
    for (const LeaseGrant& grant : grants) {
      lease.Reset()
          .Bind(1, worker_id)
          .Bind(2, grant.lease_expires_ms)
          .Bind(3, now)
          .Bind(4, grant.trial_id);
      SWEEP_RETURN_IF_ERROR(lease.Run());
    }
    Statement& assign = statements_->touch_worker;
    assign.Reset().Bind(1, now).Bind(2, grants.front().trial_id).Bind(3, worker_id);
    SWEEP_RETURN_IF_ERROR(assign.Run());
    return grants;
  });
}

absl::Status Store::FindFusableTrials(int64_t group_size, uint64_t sweep_seed,
                                      std::vector<LeaseGrant>& grants) {
  const LeaseGrant first = grants.front();
  absl::StatusOr<Assignment> assignment = AssignmentFromJson(first.params_json);
  if (!assignment.ok()) return assignment.status();
  absl::StatusOr<Hyperparameters> shape = HyperparametersFromAssignment(*assignment);
  // A trial whose values a worker cannot train leases alone, and its worker reports why.
  if (!shape.ok()) return absl::OkStatus();

  Statement& select = statements_->fusable_pending;
  select.Reset()
      .Bind(1, first.sweep_id)
      .Bind(2, first.trial_id)
      .Bind(3, first.params_json)
      .Bind(4, group_size - 1);
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    LeaseGrant grant = GrantFromRow(select, sweep_seed, first.lease_expires_ms);
    // The query compares the JSON values; the parsed hyperparameters decide.
    absl::StatusOr<Hyperparameters> candidate_shape = HyperparametersFromJson(grant.params_json);
    if (candidate_shape.ok() && CanFuse(*shape, *candidate_shape)) {
      grants.push_back(std::move(grant));
    }
  }
  select.Reset();
  return absl::OkStatus();
}

absl::Status Store::CheckCurrentLease(const v1::Lease& lease, v1::TrialState* state,
                                      int64_t* sweep_id) {
  Statement& select = statements_->lease_state;
  select.Reset().Bind(1, lease.trial_id());
  absl::StatusOr<bool> row = select.Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::NotFoundError("trial " + std::to_string(lease.trial_id()) + " not found");
  }
  *state = static_cast<v1::TrialState>(select.ColumnInt(0));
  const int64_t attempt = select.ColumnInt(1);
  *sweep_id = select.ColumnInt(3);
  select.Reset();
  if (attempt != lease.attempt()) {
    return absl::AbortedError("lease of trial " + std::to_string(lease.trial_id()) + " attempt " +
                              std::to_string(lease.attempt()) +
                              " is no longer current: the trial is at attempt " +
                              std::to_string(attempt) + " (" + StateName(*state) +
                              "); drop it and acquire another trial");
  }
  return absl::OkStatus();
}

absl::StatusOr<LeaseRenewal> Store::RecordProgress(const v1::Lease& lease, int64_t worker_id,
                                                   const std::vector<v1::MetricRow>& rows,
                                                   int64_t now, int64_t lease_ms) {
  return Write<LeaseRenewal>([&]() -> absl::StatusOr<LeaseRenewal> {
    v1::TrialState state = v1::TRIAL_STATE_UNSPECIFIED;
    int64_t sweep_id = 0;
    SWEEP_RETURN_IF_ERROR(CheckCurrentLease(lease, &state, &sweep_id));
    Statement& lease_state = statements_->lease_state;
    lease_state.Reset().Bind(1, lease.trial_id());
    SWEEP_RETURN_IF_ERROR(lease_state.Step().status());
    int64_t acked_seq = lease_state.ColumnInt(2);
    LeaseRenewal renewal;
    renewal.sweep_id = sweep_id;
    renewal.params_json = lease_state.ColumnText(4);
    if (!lease_state.ColumnIsNull(5)) {
      renewal.stop = v1::STOP_REASON_EARLY_STOPPED;
      renewal.stop_message = lease_state.ColumnText(5);
    }
    lease_state.Reset();

    if (state == v1::TRIAL_STATE_CANCELLED) {
      renewal.stop = v1::STOP_REASON_CANCELLED;
      renewal.stop_message = "trial " + std::to_string(lease.trial_id()) + " was cancelled";
      renewal.acked_seq = acked_seq;
      return renewal;
    }
    if (state != v1::TRIAL_STATE_RUNNING) {
      return absl::AbortedError("lease of trial " + std::to_string(lease.trial_id()) + " attempt " +
                                std::to_string(lease.attempt()) +
                                " is no longer current: the trial is " + StateName(state));
    }

    Statement& insert = statements_->insert_metric;
    for (const v1::MetricRow& row : rows) {
      insert.Reset()
          .Bind(1, lease.trial_id())
          .Bind(2, int64_t{lease.attempt()})
          .Bind(3, row.seq())
          .Bind(4, int64_t{row.epoch()})
          .Bind(5, row.step())
          .Bind(6, row.name());
      if (std::isnan(row.value())) {
        insert.BindNull(7);
      } else {
        insert.Bind(7, row.value());
      }
      SWEEP_RETURN_IF_ERROR(insert.Run());
      if (sqlite3_changes(db_) > 0) {
        renewal.inserted.push_back(row);
        // The column ranks running trials by their latest value; NaN and infinities never
        // rank, so they store NULL.
        if (row.name() == "val_accuracy") {
          Statement& latest = statements_->set_latest_val_accuracy;
          latest.Reset().Bind(2, lease.trial_id());
          if (std::isfinite(row.value())) {
            latest.Bind(1, row.value());
          } else {
            latest.BindNull(1);
          }
          SWEEP_RETURN_IF_ERROR(latest.Run());
        }
      }
      acked_seq = std::max(acked_seq, row.seq());
    }
    renewal.acked_seq = acked_seq;
    renewal.lease_expires_ms = now + lease_ms;
    if (renewal.stop == v1::STOP_REASON_UNSPECIFIED) {
      // Deciding in the transaction that stores the rows keeps decisions reproducible, because
      // a restart never reads the rows without the decision they led to.
      SWEEP_RETURN_IF_ERROR(ApplyStoppingRule(lease, renewal));
    }
    int64_t epoch = 0;
    for (const v1::MetricRow& row : rows) epoch = std::max<int64_t>(epoch, row.epoch());
    Statement& renew = statements_->renew_lease;
    renew.Reset()
        .Bind(1, renewal.lease_expires_ms)
        .Bind(2, acked_seq)
        .Bind(3, epoch)
        .Bind(4, lease.trial_id());
    SWEEP_RETURN_IF_ERROR(renew.Run());
    Statement& touch = statements_->touch_worker_seen;
    touch.Reset().Bind(1, now).Bind(2, worker_id);
    SWEEP_RETURN_IF_ERROR(touch.Run());
    return renewal;
  });
}

absl::StatusOr<FinishResult> Store::FinishTrial(const FinishReport& report, int64_t now) {
  return Write<FinishResult>([&]() -> absl::StatusOr<FinishResult> {
    v1::TrialState state = v1::TRIAL_STATE_UNSPECIFIED;
    FinishResult result;
    SWEEP_RETURN_IF_ERROR(CheckCurrentLease(report.lease, &state, &result.sweep_id));

    v1::TrialState target = v1::TRIAL_STATE_UNSPECIFIED;
    switch (report.outcome) {
      case v1::TRIAL_OUTCOME_COMPLETED:
        target = v1::TRIAL_STATE_COMPLETED;
        break;
      case v1::TRIAL_OUTCOME_FAILED:
        target = v1::TRIAL_STATE_FAILED;
        break;
      case v1::TRIAL_OUTCOME_STOPPED:
        target = v1::TRIAL_STATE_STOPPED;
        break;
      case v1::TRIAL_OUTCOME_RELEASED:
        target = v1::TRIAL_STATE_PENDING;
        break;
      default:
        return absl::InvalidArgumentError("finish report of trial " +
                                          std::to_string(report.lease.trial_id()) +
                                          " has no outcome; set COMPLETED, FAILED or STOPPED");
    }
    result.state = state;
    if (target == v1::TRIAL_STATE_PENDING) {
      if (state != v1::TRIAL_STATE_RUNNING) return result;
      Statement& requeue = statements_->requeue;
      requeue.Reset().Bind(1, report.lease.trial_id());
      SWEEP_RETURN_IF_ERROR(requeue.Run());
      Statement& clear = statements_->clear_worker_trial;
      clear.Reset().Bind(1, now).Bind(2, report.worker_id).Bind(3, report.lease.trial_id());
      SWEEP_RETURN_IF_ERROR(clear.Run());
      result.state = target;
      result.changed = true;
      return result;
    }
    if (IsFinal(state)) {
      // A retried report of an outcome already stored, or a stop the coordinator decided.
      if (state == target || state == v1::TRIAL_STATE_CANCELLED) return result;
      return absl::AbortedError("trial " + std::to_string(report.lease.trial_id()) +
                                " already ended as " + StateName(state));
    }
    if (state != v1::TRIAL_STATE_RUNNING) {
      return absl::AbortedError("lease of trial " + std::to_string(report.lease.trial_id()) +
                                " is no longer current: the trial is " + StateName(state));
    }
    Statement& lease_state = statements_->lease_state;
    lease_state.Reset().Bind(1, report.lease.trial_id());
    SWEEP_RETURN_IF_ERROR(lease_state.Step().status());
    const int64_t acked_seq = lease_state.ColumnInt(2);
    const std::string stop_reason = lease_state.ColumnText(5);
    lease_state.Reset();
    if (report.last_seq > acked_seq) {
      return absl::FailedPreconditionError(
          "trial " + std::to_string(report.lease.trial_id()) + " has metric rows up to seq " +
          std::to_string(acked_seq) + " stored but the report says " +
          std::to_string(report.last_seq) + "; send the remaining rows first");
    }

    double val_accuracy = std::numeric_limits<double>::quiet_NaN();
    for (const auto& [name, value] : report.final_metrics) {
      if (name == "best_val_accuracy" || (name == "val_accuracy" && std::isnan(val_accuracy))) {
        val_accuracy = value;
      }
    }
    Statement& finish = statements_->finish_trial;
    finish.Reset().Bind(1, int64_t{target}).Bind(2, now);
    if (std::isfinite(val_accuracy)) {
      finish.Bind(3, val_accuracy);
    } else {
      finish.BindNull(3);
    }
    const bool early_stop = target == v1::TRIAL_STATE_STOPPED && !stop_reason.empty();
    finish.Bind(4, MetricsToJson(report.final_metrics))
        .Bind(5, early_stop ? stop_reason : report.failure_reason)
        .Bind(6, report.checkpoint_path)
        .Bind(7, report.lease.trial_id());
    SWEEP_RETURN_IF_ERROR(finish.Run());
    Statement& clear = statements_->clear_worker_trial;
    clear.Reset().Bind(1, now).Bind(2, report.worker_id).Bind(3, report.lease.trial_id());
    SWEEP_RETURN_IF_ERROR(clear.Run());
    result.state = target;
    result.changed = true;
    return result;
  });
}

absl::StatusOr<v1::CancelResponse> Store::Cancel(int64_t sweep_id, int64_t trial_id, int64_t now) {
  return Write<v1::CancelResponse>([&]() -> absl::StatusOr<v1::CancelResponse> {
    Statement& select = statements_->select_sweep;
    select.Reset().Bind(1, sweep_id);
    absl::StatusOr<bool> found = select.Step();
    select.Reset();
    if (!found.ok()) return found.status();
    if (!*found) return absl::NotFoundError("sweep " + std::to_string(sweep_id) + " not found");
    if (trial_id != 0) {
      Statement& trial = statements_->lease_state;
      trial.Reset().Bind(1, trial_id);
      absl::StatusOr<bool> row = trial.Step();
      if (!row.ok()) return row.status();
      const bool belongs = *row && trial.ColumnInt(3) == sweep_id;
      trial.Reset();
      if (!belongs) {
        return absl::NotFoundError("trial " + std::to_string(trial_id) + " not found in sweep " +
                                   std::to_string(sweep_id));
      }
    }

    v1::CancelResponse response;
    Statement& cancel = statements_->cancel_trials;
    for (int state : {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_RUNNING}) {
      cancel.Reset()
          .Bind(1, now)
          .Bind(2, sweep_id)
          .Bind(3, int64_t{state})
          .Bind(4, trial_id)
          .Bind(5, trial_id);
      SWEEP_RETURN_IF_ERROR(cancel.Run());
      const int64_t changed = sqlite3_changes(db_);
      if (state == v1::TRIAL_STATE_PENDING) {
        response.set_cancelled_pending(changed);
      } else {
        response.set_cancelled_running(changed);
      }
    }
    if (trial_id == 0) {
      Statement& flag = statements_->cancel_sweep_flag;
      flag.Reset().Bind(1, sweep_id);
      SWEEP_RETURN_IF_ERROR(flag.Run());
    }
    return response;
  });
}

absl::StatusOr<ExpiredLeases> Store::ExpireLeases(int64_t now) {
  return Write<ExpiredLeases>([&]() -> absl::StatusOr<ExpiredLeases> {
    struct Expired {
      int64_t trial_id;
      int64_t attempt;
      int64_t max_attempts;
      int64_t worker_id;
      int64_t sweep_id;
    };
    std::vector<Expired> expired;
    Statement& select = statements_->expired;
    select.Reset().Bind(1, now);
    while (true) {
      absl::StatusOr<bool> row = select.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      expired.push_back({select.ColumnInt(0), select.ColumnInt(1), select.ColumnInt(2),
                         select.ColumnInt(3), select.ColumnInt(4)});
    }

    ExpiredLeases result;
    for (const Expired& trial : expired) {
      if (trial.attempt >= trial.max_attempts) {
        Statement& fail = statements_->fail_trial;
        fail.Reset()
            .Bind(1, now)
            .Bind(2, "lease expired on attempt " + std::to_string(trial.attempt) + " of " +
                         std::to_string(trial.max_attempts) + " (worker " +
                         std::to_string(trial.worker_id) + " stopped sending heartbeats)")
            .Bind(3, trial.trial_id);
        SWEEP_RETURN_IF_ERROR(fail.Run());
        ++result.failed;
        result.failed_trials.emplace_back(trial.sweep_id, trial.trial_id);
        spdlog::warn("trial={} attempt={} worker={} lease expired; trial failed after {} attempts",
                     trial.trial_id, trial.attempt, trial.worker_id, trial.attempt);
      } else {
        Statement& requeue = statements_->requeue;
        requeue.Reset().Bind(1, trial.trial_id);
        SWEEP_RETURN_IF_ERROR(requeue.Run());
        ++result.requeued;
        spdlog::warn("trial={} attempt={} worker={} lease expired; trial requeued", trial.trial_id,
                     trial.attempt, trial.worker_id);
      }
    }
    return result;
  });
}

absl::StatusOr<std::vector<int64_t>> Store::RunningTrialIds(int64_t sweep_id) {
  std::lock_guard lock(mutex_);
  std::vector<int64_t> ids;
  Statement& select = statements_->running_ids;
  select.Reset().Bind(1, sweep_id);
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(select.ColumnInt(0));
  }
  return ids;
}

absl::Status Store::ExecuteForTesting(const std::string& sql) {
  std::lock_guard lock(mutex_);
  return Execute(db_, sql);
}

absl::Status Store::ApplyStoppingRule(const v1::Lease& lease, LeaseRenewal& renewal) {
  int32_t epoch = 0;
  for (const v1::MetricRow& row : renewal.inserted) {
    if (row.name() == "val_accuracy") epoch = std::max(epoch, row.epoch());
  }
  if (epoch == 0) return absl::OkStatus();
  Statement& select_rule = statements_->select_stopping_rule;
  select_rule.Reset().Bind(1, renewal.sweep_id);
  absl::StatusOr<bool> found = select_rule.Step();
  if (!found.ok()) return found.status();
  v1::StoppingRule rule;
  const bool parsed = *found && rule.ParseFromString(select_rule.ColumnText(0));
  select_rule.Reset();
  if (!parsed || rule.rule_case() == v1::StoppingRule::RULE_NOT_SET) return absl::OkStatus();

  // A trial that just finished its last epoch completes; stopping it would save nothing.
  absl::StatusOr<Hyperparameters> hyperparameters = HyperparametersFromJson(renewal.params_json);
  if (!hyperparameters.ok()) return hyperparameters.status();
  if (epoch >= hyperparameters->num_epochs) return absl::OkStatus();

  absl::StatusOr<ValidationHistory> history = ReadValidationHistoryLocked(renewal.sweep_id, epoch);
  if (!history.ok()) return history.status();
  const StopDecision decision = DecideStop(rule, lease.trial_id(), epoch, *history);
  if (!decision.stop) return absl::OkStatus();
  Statement& request = statements_->request_stop;
  request.Reset()
      .Bind(1, decision.reason)
      .Bind(2, lease.trial_id())
      .Bind(3, int64_t{lease.attempt()});
  SWEEP_RETURN_IF_ERROR(request.Run());
  spdlog::info("sweep={} trial={} attempt={} stopped early: {}", renewal.sweep_id, lease.trial_id(),
               lease.attempt(), decision.reason);
  renewal.stop = v1::STOP_REASON_EARLY_STOPPED;
  renewal.stop_message = decision.reason;
  return absl::OkStatus();
}

absl::StatusOr<ValidationHistory> Store::ReadValidationHistory(int64_t sweep_id,
                                                               int32_t max_epoch) {
  std::lock_guard lock(mutex_);
  return ReadValidationHistoryLocked(sweep_id, max_epoch);
}

absl::StatusOr<ValidationHistory> Store::ReadValidationHistoryLocked(int64_t sweep_id,
                                                                     int32_t max_epoch) {
  ValidationHistory history;
  Statement& select = statements_->validation_history;
  select.Reset().Bind(1, sweep_id).Bind(2, int64_t{max_epoch});
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    history[select.ColumnInt(0)][static_cast<int32_t>(select.ColumnInt(1))] =
        select.ColumnIsNull(2) ? std::numeric_limits<double>::quiet_NaN() : select.ColumnDouble(2);
  }
  return history;
}

absl::StatusOr<std::map<v1::TrialState, int64_t>> Store::CountTrialsByState() {
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT state, COUNT(*) FROM trials GROUP BY state");
  std::map<v1::TrialState, int64_t> counts;
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    counts[static_cast<v1::TrialState>(select.ColumnInt(0))] = select.ColumnInt(1);
  }
  return counts;
}

absl::StatusOr<int64_t> Store::CountActiveWorkers(int64_t since_ms) {
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT COUNT(*) FROM workers WHERE last_seen_ms >= ?");
  select.Bind(1, since_ms);
  absl::StatusOr<bool> row = select.Step();
  if (!row.ok()) return row.status();
  return select.ColumnInt(0);
}

}  // namespace sweep::server
