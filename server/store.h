#ifndef SWEEP_SERVER_STORE_H_
#define SWEEP_SERVER_STORE_H_

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/value.h"
#include "server/sqlite.h"
#include "server/stopping.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep::server {

// Schema version written to PRAGMA user_version by the newest migration.
inline constexpr int kSchemaVersion = 1;

// AcquireTrials looks for trials to group with the first among this many pending trials
// of its sweep (lowest ordinals first), which bounds the time a group lease takes.
inline constexpr int kFusionWindow = 4096;

struct NewSweep {
  std::string name;
  std::string grid_json;
  int64_t grid_size = 0;
  uint64_t seed = 0;
  std::string combination_count;
  int64_t parent_sweep_id = 0;
  int32_t max_attempts = 3;
  // Serialized v1::StoppingRule; empty for none.
  std::string stopping_rule;
  int32_t max_concurrent_trials = 0;
};

// A trial handed to a worker.
struct LeaseGrant {
  int64_t trial_id = 0;
  int32_t attempt = 0;
  int64_t sweep_id = 0;
  std::string params_json;
  int64_t lease_expires_ms = 0;
  uint64_t trial_seed = 0;
};

// Result of a heartbeat or metric batch on a current lease.
struct LeaseRenewal {
  int64_t sweep_id = 0;
  std::string params_json;
  // Rows of the batch stored by this call; resent rows stored before are left out.
  std::vector<v1::MetricRow> inserted;
  int64_t acked_seq = 0;
  int64_t lease_expires_ms = 0;
  // CANCELLED when the trial was cancelled (the rows of the batch were then not stored);
  // EARLY_STOPPED when a stopping rule stopped it.
  v1::StopReason stop = v1::STOP_REASON_UNSPECIFIED;
  std::string stop_message;
};

struct FinishReport {
  v1::Lease lease;
  int64_t worker_id = 0;
  v1::TrialOutcome outcome = v1::TRIAL_OUTCOME_UNSPECIFIED;
  std::vector<std::pair<std::string, double>> final_metrics;
  std::string failure_reason;
  std::string checkpoint_path;
  int64_t last_seq = 0;
};

struct FinishResult {
  int64_t sweep_id = 0;
  v1::TrialState state = v1::TRIAL_STATE_UNSPECIFIED;
  // False when the report repeated an end already stored.
  bool changed = false;
};

struct ExpiredLeases {
  int64_t requeued = 0;
  int64_t failed = 0;
  // Sweep id and trial id of each trial that the expiry failed.
  std::vector<std::pair<int64_t, int64_t>> failed_trials;
};

// Durable state of the coordinator in one SQLite file: sweeps, trials, metric rows and
// workers. Every method is atomic and thread-safe; calls are serialized on one connection,
// which is the only writer. Times are Unix milliseconds.
//
// Group commit: writes that arrive while a transaction is being stored wait and are then
// stored together in the next transaction, each in its own savepoint, so a failing write
// leaves the others of its group intact. A write method returns after its group committed.
//
// Durability: WAL with synchronous=NORMAL, so a write whose call returned survives a crash
// of the coordinator process; an operating system crash or power loss may lose the last
// transactions.
class Store {
 public:
  // Opens or creates the database at `path` and migrates it to kSchemaVersion. Fails with
  // FAILED_PRECONDITION when the file belongs to a newer release.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();

  // Stores a sweep and its trials, all PENDING, in one transaction. Trials are
  // (ordinal, canonical params JSON) in sample order.
  absl::StatusOr<int64_t> CreateSweep(const NewSweep& sweep,
                                      const std::vector<std::string>& trial_params, int64_t now);
  absl::StatusOr<v1::Sweep> GetSweep(int64_t sweep_id);
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps();
  // Lists a sweep's trials, best first by `sort_by` (highest value first, trials without
  // a finite value last, then by ordinal).
  absl::StatusOr<std::vector<v1::Trial>> ListTrials(int64_t sweep_id, v1::TrialState state,
                                                    const std::string& sort_by, int32_t limit);
  absl::StatusOr<v1::GetTrialResponse> GetTrial(int64_t trial_id);

  absl::StatusOr<int64_t> RegisterWorker(const std::string& host, const std::string& device,
                                         int64_t now);
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers();

  // Leases a pending trial to `worker_id`, from the sweep with the fewest running trials
  // that is below its concurrency limit (older sweeps first on ties), lowest ordinal first: raises
  // its attempt, marks it RUNNING and sets its lease to expire at now + lease_ms. Returns nullopt
  // when none is pending.
  absl::StatusOr<std::optional<LeaseGrant>> AcquireTrial(int64_t worker_id, int64_t now,
                                                         int64_t lease_ms);
  // Leases like AcquireTrial, then also up to max_trials - 1 further pending trials of the
  // same sweep that CanFuse accepts with the first one, without exceeding the sweep's
  // concurrency limit. Returns the first trial first; an empty vector when none is pending.
  absl::StatusOr<std::vector<LeaseGrant>> AcquireTrials(int64_t worker_id, int64_t now,
                                                        int64_t lease_ms, int32_t max_trials);

  // Stores metric rows of a current lease (rows already stored are skipped) and renews
  // the lease. When the rows bring a new val_accuracy epoch and the sweep has a stopping
  // rule, decides in the same transaction whether the trial stops; a stopped trial's
  // reports keep carrying the stop until it ends as STOPPED. Fails with NOT_FOUND for an unknown
  // trial and ABORTED when the attempt is no longer current.
  absl::StatusOr<LeaseRenewal> RecordProgress(const v1::Lease& lease, int64_t worker_id,
                                              const std::vector<v1::MetricRow>& rows, int64_t now,
                                              int64_t lease_ms);

  // Ends a trial with the worker's outcome. Idempotent for the same attempt. Fails with
  // ABORTED when the attempt is no longer current and FAILED_PRECONDITION when metric rows
  // up to last_seq are not all stored yet.
  absl::StatusOr<FinishResult> FinishTrial(const FinishReport& report, int64_t now);

  // Cancels a sweep's pending and running trials (or one trial). Running trials become
  // CANCELLED at once; their workers learn it on their next report.
  absl::StatusOr<v1::CancelResponse> Cancel(int64_t sweep_id, int64_t trial_id, int64_t now);

  // Requeues RUNNING trials whose lease expired before `now`, or fails those that used
  // their sweep's max attempts.
  absl::StatusOr<ExpiredLeases> ExpireLeases(int64_t now);

  // Ids of RUNNING trials of a sweep.
  absl::StatusOr<std::vector<int64_t>> RunningTrialIds(int64_t sweep_id);

  // Validation accuracy rows up to `max_epoch` of the current attempt of every trial of
  // the sweep.
  absl::StatusOr<ValidationHistory> ReadValidationHistory(int64_t sweep_id, int32_t max_epoch);

  // Number of trials in each state, over every sweep.
  absl::StatusOr<std::map<v1::TrialState, int64_t>> CountTrialsByState();
  // Number of workers seen at or after `since_ms`.
  absl::StatusOr<int64_t> CountActiveWorkers(int64_t since_ms);

  // Runs SQL on the store's connection; tests use it to inject faults such as a size cap
  // (PRAGMA max_page_count).
  absl::Status ExecuteForTesting(const std::string& sql);

 private:
  struct WriteJob {
    absl::FunctionRef<absl::Status()> body;
    absl::Status status;
    bool done = false;
    // Signalled when the job is done or its thread is to store the next group.
    std::condition_variable wake;
  };

  explicit Store(sqlite3* db);
  absl::Status Migrate();
  // Runs `body` in the next group transaction and returns once that transaction committed or
  // failed. `body` runs on whichever calling thread stores the group.
  absl::Status RunWrite(absl::FunctionRef<absl::Status()> body);
  template <typename T>
  absl::StatusOr<T> Write(absl::FunctionRef<absl::StatusOr<T>()> body);
  // Stores `batch` in one transaction, one savepoint per job, and sets each job's status.
  void CommitBatch(const std::vector<WriteJob*>& batch);
  absl::Status PrepareStatements();
  absl::StatusOr<v1::Sweep> ReadSweep(Statement& statement);
  absl::Status FillLatestMetrics(v1::Trial& trial);
  // Appends to `grants` the pending trials that fuse with grants.front(), until the group
  // has `group_size` trials or the fusion window is searched.
  absl::Status FindFusableTrials(int64_t group_size, uint64_t sweep_seed,
                                 std::vector<LeaseGrant>& grants);
  // Checks that the lease's attempt is the trial's current one; sets the trial's state and
  // sweep.
  absl::Status ApplyStoppingRule(const v1::Lease& lease, LeaseRenewal& renewal);
  absl::StatusOr<ValidationHistory> ReadValidationHistoryLocked(int64_t sweep_id,
                                                                int32_t max_epoch);
  absl::Status CheckCurrentLease(const v1::Lease& lease, v1::TrialState* state, int64_t* sweep_id);

  // Guards the connection: held to store a group and for every read.
  std::mutex mutex_;
  sqlite3* db_;

  std::mutex queue_mutex_;
  std::vector<WriteJob*> queue_ ABSL_GUARDED_BY(queue_mutex_);
  bool committing_ ABSL_GUARDED_BY(queue_mutex_) = false;

  struct Statements;
  std::unique_ptr<Statements> statements_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace sweep::server

#endif  // SWEEP_SERVER_STORE_H_
