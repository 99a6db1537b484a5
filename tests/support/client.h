#ifndef SWEEP_TESTS_SUPPORT_CLIENT_H_
#define SWEEP_TESTS_SUPPORT_CLIENT_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "sweep/v1/sweep.grpc.pb.h"

namespace sweep::testing {

// A test's view of a running coordinator: submits sweeps and reads their state.
class TestClient {
 public:
  explicit TestClient(const std::string& address);

  // Submits a sweep; fails the calling test on error and returns its id (or 0).
  int64_t Submit(const std::string& grid_json, int64_t grid_size, uint64_t seed = 1);
  v1::Sweep GetSweep(int64_t sweep_id);
  std::vector<v1::Trial> Trials(int64_t sweep_id);
  v1::GetTrialResponse GetTrial(int64_t trial_id);
  v1::SweepService::Stub& stub() { return *stub_; }

  // Waits until the sweep leaves RUNNING; returns its last seen state.
  v1::Sweep WaitForSweepEnd(int64_t sweep_id, std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<v1::SweepService::Stub> stub_;
};

// Runs a query that returns one integer on an SQLite file, opened read-only.
int64_t QueryInt(const std::filesystem::path& db, const std::string& sql);

}  // namespace sweep::testing

#endif  // SWEEP_TESTS_SUPPORT_CLIENT_H_
