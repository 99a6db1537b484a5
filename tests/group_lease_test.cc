// Group leases over gRPC: a real coordinator process leases several fusable trials in one
// AcquireTrial call, each with its own lease.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <set>

#include "sweep/v1/sweep.grpc.pb.h"
#include "tests/support/client.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

class GroupLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::RegisterWorkerRequest request;
    request.set_host("group-test");
    request.set_device("cpu");
    v1::RegisterWorkerResponse response;
    ASSERT_TRUE(stub_->RegisterWorker(&context, request, &response).ok());
    worker_id_ = response.worker_id();
  }

  grpc::Status Acquire(int32_t max_trials, v1::AcquireTrialResponse& response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::AcquireTrialRequest request;
    request.set_worker_id(worker_id_);
    request.set_max_trials(max_trials);
    return stub_->AcquireTrial(&context, request, &response);
  }

  TempDir dir_;
  CoordinatorProcess coordinator_{dir_.path(), dir_.path() / "sweep.db"};
  TestClient client_{coordinator_.address()};
  std::unique_ptr<v1::WorkerService::Stub> stub_ = v1::WorkerService::NewStub(
      grpc::CreateChannel(coordinator_.address(), grpc::InsecureChannelCredentials()));
  int64_t worker_id_ = 0;
};

std::string ParamValue(const google::protobuf::RepeatedPtrField<v1::Param>& params,
                       const std::string& name) {
  for (const v1::Param& param : params) {
    if (param.name() == name) return param.value().DebugString();
  }
  return "";
}

TEST_F(GroupLeaseTest, EachGroupedTrialHasOwnLease) {
  const int64_t sweep_id =
      client_.Submit(R"({"conv1_depth": [8, 16], "keep_prob": [0.4, 0.5, 0.6]})", 6);
  v1::AcquireTrialResponse acquired;
  const grpc::Status status = Acquire(8, acquired);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(acquired.has_lease());
  ASSERT_EQ(acquired.grouped_trials_size(), 2);

  const std::string conv1_depth = ParamValue(acquired.params(), "conv1_depth");
  std::set<int64_t> ids = {acquired.lease().trial_id()};
  std::set<uint64_t> seeds = {acquired.trial_seed()};
  std::vector<v1::Lease> leases = {acquired.lease()};
  for (const v1::GroupedTrial& trial : acquired.grouped_trials()) {
    EXPECT_EQ(ParamValue(trial.params(), "conv1_depth"), conv1_depth);
    EXPECT_EQ(trial.lease().attempt(), 1);
    ids.insert(trial.lease().trial_id());
    seeds.insert(trial.trial_seed());
    leases.push_back(trial.lease());
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(seeds.size(), 3u);

  // Each lease ends on its own.
  for (const v1::Lease& lease : leases) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::FinishTrialRequest request;
    *request.mutable_lease() = lease;
    request.set_worker_id(worker_id_);
    request.set_outcome(v1::TRIAL_OUTCOME_COMPLETED);
    v1::FinishTrialResponse response;
    ASSERT_TRUE(stub_->FinishTrial(&context, request, &response).ok());
    EXPECT_EQ(response.state(), v1::TRIAL_STATE_COMPLETED);
  }
  const v1::Sweep sweep = client_.GetSweep(sweep_id);
  EXPECT_EQ(sweep.counts().completed(), 3);
  EXPECT_EQ(sweep.counts().pending(), 3);
}

TEST_F(GroupLeaseTest, MaxTrialsOutOfRangeIsRejected) {
  const int64_t sweep_id = client_.Submit(R"({"conv1_depth": [8, 16]})", 2);
  for (int32_t max_trials : {-1, 257}) {
    v1::AcquireTrialResponse acquired;
    const grpc::Status status = Acquire(max_trials, acquired);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("max_trials " + std::to_string(max_trials)),
              std::string::npos)
        << status.error_message();
  }
  EXPECT_EQ(client_.GetSweep(sweep_id).counts().pending(), 2);
}

}  // namespace
}  // namespace sweep::testing
