#include "tests/support/client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "tests/support/process.h"

namespace sweep::testing {
namespace {

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

}  // namespace

TestClient::TestClient(const std::string& address)
    : stub_(v1::SweepService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

int64_t TestClient::Submit(const std::string& grid_json, int64_t grid_size, uint64_t seed) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::SubmitSweepRequest request;
  request.set_grid_json(grid_json);
  request.set_grid_size(grid_size);
  request.set_seed(seed);
  request.set_name("test");
  v1::SubmitSweepResponse response;
  const grpc::Status status = stub_->SubmitSweep(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.sweep().id();
}

v1::Sweep TestClient::GetSweep(int64_t sweep_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  v1::Sweep sweep;
  const grpc::Status status = stub_->GetSweep(&context, request, &sweep);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return sweep;
}

std::vector<v1::Trial> TestClient::Trials(int64_t sweep_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ListTrialsRequest request;
  request.set_sweep_id(sweep_id);
  v1::ListTrialsResponse response;
  const grpc::Status status = stub_->ListTrials(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<v1::Trial> trials(response.trials().begin(), response.trials().end());
  std::sort(trials.begin(), trials.end(),
            [](const v1::Trial& a, const v1::Trial& b) { return a.ordinal() < b.ordinal(); });
  return trials;
}

v1::GetTrialResponse TestClient::GetTrial(int64_t trial_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetTrialRequest request;
  request.set_trial_id(trial_id);
  v1::GetTrialResponse response;
  const grpc::Status status = stub_->GetTrial(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

v1::Sweep TestClient::WaitForSweepEnd(int64_t sweep_id, std::chrono::milliseconds timeout) {
  v1::Sweep sweep;
  WaitFor(
      [&] {
        grpc::ClientContext context;
        SetDeadline(context);
        v1::GetSweepRequest request;
        request.set_sweep_id(sweep_id);
        if (!stub_->GetSweep(&context, request, &sweep).ok()) return false;
        return sweep.state() != v1::SWEEP_STATE_RUNNING;
      },
      timeout);
  return sweep;
}

int64_t QueryInt(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db;
    sqlite3_close(handle);
    return -1;
  }
  sqlite3_busy_timeout(handle, 5000);
  sqlite3_stmt* statement = nullptr;
  int64_t value = -1;
  if (sqlite3_prepare_v2(handle, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
      sqlite3_step(statement) == SQLITE_ROW) {
    value = sqlite3_column_int64(statement, 0);
  } else {
    ADD_FAILURE() << "query failed: " << sql << ": " << sqlite3_errmsg(handle);
  }
  sqlite3_finalize(statement);
  sqlite3_close(handle);
  return value;
}

}  // namespace sweep::testing
