// The SQLite store on real database files.
#include "server/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "tests/support/client.h"
#include "tests/support/process.h"

namespace sweep::server {
namespace {

using ::sweep::testing::TempDir;

std::vector<std::string> TrialParams(int count) {
  std::vector<std::string> params;
  for (int i = 0; i < count; ++i)
    params.push_back(R"({"conv1_depth":)" + std::to_string(i + 1) + "}");
  return params;
}

NewSweep MakeSweep(int32_t max_attempts = 3) {
  return NewSweep{.name = "test",
                  .grid_json = R"({"conv1_depth":[1]})",
                  .grid_size = 1,
                  .seed = 1,
                  .combination_count = "1",
                  .max_attempts = max_attempts};
}

v1::MetricRow Row(int64_t seq, const std::string& name, double value) {
  v1::MetricRow row;
  row.set_seq(seq);
  row.set_epoch(1);
  row.set_step(seq);
  row.set_name(name);
  row.set_value(value);
  return row;
}

v1::Lease LeaseOf(const LeaseGrant& grant) {
  v1::Lease lease;
  lease.set_trial_id(grant.trial_id);
  lease.set_attempt(grant.attempt);
  return lease;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<int64_t> worker = store_->RegisterWorker("host", "cpu", 0);
    ASSERT_TRUE(worker.ok());
    worker_ = *worker;
  }

  LeaseGrant Acquire(int64_t now = 1000, int64_t lease_ms = 100) {
    absl::StatusOr<std::optional<LeaseGrant>> grant = store_->AcquireTrial(worker_, now, lease_ms);
    EXPECT_TRUE(grant.ok()) << grant.status();
    if (grant.ok()) EXPECT_TRUE(grant->has_value()) << "no pending trial to lease";
    return grant.ok() && grant->has_value() ? **grant : LeaseGrant{};
  }

  TempDir dir_;
  std::filesystem::path path_ = dir_.path() / "sweep.db";
  std::unique_ptr<Store> store_;
  int64_t worker_ = 0;
};

TEST_F(StoreTest, FreshDatabaseHasCurrentSchemaVersion) {
  store_.reset();
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "PRAGMA user_version"), kSchemaVersion);
}

TEST_F(StoreTest, NewerSchemaIsRejected) {
  ASSERT_TRUE(store_->ExecuteForTesting("PRAGMA user_version = 99").ok());
  store_.reset();
  absl::StatusOr<std::unique_ptr<Store>> reopened = Store::Open(path_.string());
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reopened.status().message().find("schema version 99"), std::string::npos);
}

TEST_F(StoreTest, AcquireHandsOutEachTrialOnce) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(3), 0).ok());
  std::set<int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.insert(Acquire().trial_id);
  EXPECT_EQ(ids.size(), 3u);
  absl::StatusOr<std::optional<LeaseGrant>> none = store_->AcquireTrial(worker_, 1000, 100);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(StoreTest, ConcurrentAcquireNeverDuplicates) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(200), 0).ok());
  std::mutex mutex;
  std::vector<int64_t> ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (true) {
        absl::StatusOr<std::optional<LeaseGrant>> grant = store_->AcquireTrial(worker_, 0, 1000);
        if (!grant.ok() || !grant->has_value()) return;
        std::lock_guard lock(mutex);
        ids.push_back((*grant)->trial_id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ids.size(), 200u);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 200u);
}

// Concurrent writes share group transactions. A write that fails halfway must neither take
// the others of its group down nor leave any of its own rows behind.
TEST_F(StoreTest, ConcurrentWritesSucceedOrFailOnTheirOwn) {
  constexpr int kThreads = 8;
  constexpr int kTrialsPerThread = 2;
  constexpr int kReports = 40;
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(kThreads * kTrialsPerThread), 0).ok());
  std::vector<LeaseGrant> grants;
  for (int i = 0; i < kThreads * kTrialsPerThread; ++i) grants.push_back(Acquire(1000, 60'000));
  ASSERT_TRUE(store_
                  ->ExecuteForTesting("CREATE TRIGGER poison BEFORE INSERT ON metrics "
                                      "WHEN NEW.name = 'poison' BEGIN "
                                      "SELECT RAISE(ABORT, 'poisoned row'); END")
                  .ok());

  std::atomic<int> stored = 0;
  std::atomic<int> failed = 0;
  std::atomic<int> unexpected = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int seq = 1; seq <= kReports; ++seq) {
        for (int k = 0; k < kTrialsPerThread; ++k) {
          const LeaseGrant& grant = grants[t * kTrialsPerThread + k];
          absl::StatusOr<LeaseRenewal> good = store_->RecordProgress(
              LeaseOf(grant), worker_, {Row(seq, "loss", 1.0 / seq)}, 1001, 60'000);
          if (good.ok() && good->acked_seq == seq) {
            ++stored;
          } else {
            ++unexpected;
          }
          // The poisoned row fails after the first row of the batch was inserted.
          absl::StatusOr<LeaseRenewal> bad = store_->RecordProgress(
              LeaseOf(grant), worker_, {Row(1000 + seq, "loss", 0.5), Row(2000 + seq, "poison", 0)},
              1001, 60'000);
          if (!bad.ok() && bad.status().message().find("poisoned row") != std::string::npos) {
            ++failed;
          } else {
            ++unexpected;
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  constexpr int kWrites = kThreads * kTrialsPerThread * kReports;
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(stored.load(), kWrites);
  EXPECT_EQ(failed.load(), kWrites);
  // The database file shows what was committed.
  store_.reset();
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM metrics"), kWrites);
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM metrics WHERE seq >= 1000"), 0);
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT MIN(acked_seq) FROM trials"), kReports);
}

// Six trials over two architectures; ordinals 0, 2 and 4 share conv1_depth 8.
std::vector<std::string> TwoArchitectureParams() {
  std::vector<std::string> params;
  for (int i = 0; i < 6; ++i) {
    params.push_back(R"({"conv1_depth":)" + std::to_string(i % 2 == 0 ? 8 : 16) +
                     R"(,"keep_prob":0.)" + std::to_string(i + 1) + "}");
  }
  return params;
}

TEST_F(StoreTest, GroupLeaseTakesFusableTrials) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TwoArchitectureParams(), 0).ok());
  absl::StatusOr<std::vector<LeaseGrant>> group = store_->AcquireTrials(worker_, 1000, 100, 8);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_EQ(group->size(), 3u);
  std::set<int64_t> ids;
  for (const LeaseGrant& grant : *group) {
    EXPECT_NE(grant.params_json.find(R"("conv1_depth":8)"), std::string::npos) << grant.params_json;
    EXPECT_EQ(grant.attempt, 1);
    EXPECT_EQ(grant.lease_expires_ms, 1100);
    ids.insert(grant.trial_id);
  }
  EXPECT_EQ(ids.size(), 3u);
  // Each trial of the group has its own seed, the one a lease of it alone would carry.
  EXPECT_NE((*group)[0].trial_seed, (*group)[1].trial_seed);
  absl::StatusOr<std::vector<v1::Worker>> workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ(workers->at(0).current_trial_id(), (*group)[0].trial_id);
  store_.reset();
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM trials WHERE state = 2"), 3);
}

TEST_F(StoreTest, GroupLeaseStopsAtMaxTrials) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TwoArchitectureParams(), 0).ok());
  absl::StatusOr<std::vector<LeaseGrant>> group = store_->AcquireTrials(worker_, 1000, 100, 2);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->size(), 2u);
  absl::StatusOr<std::vector<LeaseGrant>> single = store_->AcquireTrials(worker_, 1000, 100, 1);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->size(), 1u);
}

TEST_F(StoreTest, GroupLeaseKeepsConcurrencyLimit) {
  NewSweep sweep = MakeSweep();
  sweep.max_concurrent_trials = 2;
  ASSERT_TRUE(store_->CreateSweep(sweep, TwoArchitectureParams(), 0).ok());
  absl::StatusOr<std::vector<LeaseGrant>> group = store_->AcquireTrials(worker_, 1000, 100, 8);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->size(), 2u);
  absl::StatusOr<std::vector<LeaseGrant>> none = store_->AcquireTrials(worker_, 1000, 100, 8);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, GroupLeaseWithoutPartnerIsSingle) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(4), 0).ok());
  absl::StatusOr<std::vector<LeaseGrant>> group = store_->AcquireTrials(worker_, 1000, 100, 8);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->size(), 1u);
}

// Sustained group commits keep the log bounded: the writer's checkpoints let the log start
// over instead of growing.
TEST_F(StoreTest, LogStaysBoundedUnderSustainedWrites) {
  constexpr int kThreads = 8;
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(kThreads), 0).ok());
  std::vector<LeaseGrant> grants;
  for (int i = 0; i < kThreads; ++i) grants.push_back(Acquire(1000, 600'000));
  const std::filesystem::path log = path_.string() + "-wal";
  std::atomic<int> writers_done = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t seq = 1; seq <= 24'000; seq += 8) {
        std::vector<v1::MetricRow> rows;
        for (int64_t k = 0; k < 8; ++k) rows.push_back(Row(seq + k, "loss", 0.5));
        EXPECT_TRUE(store_->RecordProgress(LeaseOf(grants[t]), worker_, rows, 1001, 600'000).ok());
      }
      ++writers_done;
    });
  }

  uintmax_t largest = 0;
  while (writers_done.load() < kThreads) {
    std::error_code error;
    largest = std::max(largest, std::filesystem::file_size(log, error));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (std::thread& thread : threads) thread.join();
  // SQLite checkpoints after the commit that takes the log to 1,000 pages (4 KiB each); the
  // bound leaves room for that commit's group.
  EXPECT_LT(largest, uintmax_t{2'000 * 4096});
}

TEST_F(StoreTest, DuplicateParametersAreRejected) {
  absl::StatusOr<int64_t> sweep = store_->CreateSweep(MakeSweep(), {R"({"a":1})", R"({"a":1})"}, 0);
  EXPECT_FALSE(sweep.ok());
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM sweeps"), 0);
}

TEST_F(StoreTest, ExpiredLeaseRequeuesThenFails) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(/*max_attempts=*/2), TrialParams(1), 0).ok());
  LeaseGrant first = Acquire(1000, 100);
  EXPECT_EQ(first.attempt, 1);
  absl::StatusOr<ExpiredLeases> expired = store_->ExpireLeases(1101);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(expired->requeued, 1);

  LeaseGrant second = Acquire(2000, 100);
  EXPECT_EQ(second.trial_id, first.trial_id);
  EXPECT_EQ(second.attempt, 2);
  expired = store_->ExpireLeases(2101);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(expired->failed, 1);
  absl::StatusOr<v1::GetTrialResponse> trial = store_->GetTrial(first.trial_id);
  ASSERT_TRUE(trial.ok());
  EXPECT_EQ(trial->trial().state(), v1::TRIAL_STATE_FAILED);
  EXPECT_NE(trial->trial().failure_reason().find("lease expired on attempt 2 of 2"),
            std::string::npos);
}

TEST_F(StoreTest, StaleAttemptIsRejected) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(1), 0).ok());
  LeaseGrant first = Acquire(1000, 100);
  ASSERT_TRUE(store_->ExpireLeases(1200).ok());
  LeaseGrant second = Acquire(1300, 100);

  absl::StatusOr<LeaseRenewal> stale =
      store_->RecordProgress(LeaseOf(first), worker_, {Row(1, "loss", 1.0)}, 1310, 100);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  FinishReport report{.lease = LeaseOf(first), .outcome = v1::TRIAL_OUTCOME_COMPLETED};
  EXPECT_EQ(store_->FinishTrial(report, 1320).status().code(), absl::StatusCode::kAborted);
  absl::StatusOr<LeaseRenewal> current =
      store_->RecordProgress(LeaseOf(second), worker_, {Row(1, "loss", 1.0)}, 1310, 100);
  EXPECT_TRUE(current.ok()) << current.status();
}

TEST_F(StoreTest, ResentRowsAreStoredOnce) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(1), 0).ok());
  LeaseGrant grant = Acquire();
  const std::vector<v1::MetricRow> rows = {Row(1, "a", 1), Row(2, "b", 0.4)};
  ASSERT_TRUE(store_->RecordProgress(LeaseOf(grant), worker_, rows, 1001, 100).ok());
  absl::StatusOr<LeaseRenewal> again =
      store_->RecordProgress(LeaseOf(grant), worker_, rows, 1002, 100);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->acked_seq, 2);
  EXPECT_EQ(again->lease_expires_ms, 1102);
  absl::StatusOr<v1::GetTrialResponse> trial = store_->GetTrial(grant.trial_id);
  ASSERT_TRUE(trial.ok());
  ASSERT_EQ(trial->history_size(), 2);
  EXPECT_EQ(trial->history(1).row().value(), 0.4);
  EXPECT_TRUE(again->inserted.empty());
}

TEST_F(StoreTest, FinishWaitsForAllRows) {
  ASSERT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(1), 0).ok());
  LeaseGrant grant = Acquire();
  ASSERT_TRUE(store_->RecordProgress(LeaseOf(grant), worker_, {Row(1, "a", 1)}, 1001, 100).ok());
  FinishReport report{.lease = LeaseOf(grant),
                      .worker_id = worker_,
                      .outcome = v1::TRIAL_OUTCOME_COMPLETED,
                      .final_metrics = {{"best_val_accuracy", 0.875}},
                      .last_seq = 2};
  EXPECT_EQ(store_->FinishTrial(report, 1002).status().code(),
            absl::StatusCode::kFailedPrecondition);
  report.last_seq = 1;
  absl::StatusOr<FinishResult> finished = store_->FinishTrial(report, 1002);
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state, v1::TRIAL_STATE_COMPLETED);
  EXPECT_TRUE(finished->changed);
  // A retried report of the same outcome is accepted and changes nothing.
  absl::StatusOr<FinishResult> retried = store_->FinishTrial(report, 1003);
  ASSERT_TRUE(retried.ok());
  EXPECT_FALSE(retried->changed);
}

TEST_F(StoreTest, FullDatabaseLeavesNoPartialSweep) {
  store_.reset();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_.string());
  ASSERT_TRUE(store.ok());
  store_ = *std::move(store);
  const int64_t pages = ::sweep::testing::QueryInt(path_, "PRAGMA page_count");
  ASSERT_TRUE(
      store_->ExecuteForTesting("PRAGMA max_page_count = " + std::to_string(pages + 2)).ok());

  absl::StatusOr<int64_t> sweep = store_->CreateSweep(MakeSweep(), TrialParams(5000), 0);
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(sweep.status().message().find("free disk space"), std::string::npos);
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM sweeps"), 0);
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM trials"), 0);

  // Space is back: the same request succeeds.
  ASSERT_TRUE(store_->ExecuteForTesting("PRAGMA max_page_count = 1073741823").ok());
  EXPECT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(5000), 0).ok());
}

TEST_F(StoreTest, ReadOnlyDatabaseGivesClearError) {
  // query_only makes every write fail with SQLITE_READONLY, as a read-only file does.
  ASSERT_TRUE(store_->ExecuteForTesting("PRAGMA query_only = 1").ok());
  absl::StatusOr<int64_t> sweep = store_->CreateSweep(MakeSweep(), TrialParams(3), 0);
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kFailedPrecondition) << sweep.status();
  EXPECT_NE(sweep.status().message().find("writable"), std::string::npos);

  ASSERT_TRUE(store_->ExecuteForTesting("PRAGMA query_only = 0").ok());
  EXPECT_TRUE(store_->CreateSweep(MakeSweep(), TrialParams(3), 0).ok());
  EXPECT_EQ(::sweep::testing::QueryInt(path_, "SELECT COUNT(*) FROM trials"), 3);
}

}  // namespace
}  // namespace sweep::server
