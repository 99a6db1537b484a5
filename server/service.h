#ifndef SWEEP_SERVER_SERVICE_H_
#define SWEEP_SERVER_SERVICE_H_

#include "server/auth.h"
#include "server/coordinator.h"
#include "sweep/v1/sweep.grpc.pb.h"

namespace sweep::server {

// Client-facing gRPC service. Handlers validate, delegate to the coordinator and convert
// statuses.
class SweepServiceImpl final : public v1::SweepService::Service {
 public:
  SweepServiceImpl(Coordinator& coordinator, const Authenticator& authenticator)
      : coordinator_(coordinator), authenticator_(authenticator) {}

  grpc::Status SubmitSweep(grpc::ServerContext* context, const v1::SubmitSweepRequest* request,
                           v1::SubmitSweepResponse* response) override;
  grpc::Status GetSweep(grpc::ServerContext* context, const v1::GetSweepRequest* request,
                        v1::Sweep* response) override;
  grpc::Status ListSweeps(grpc::ServerContext* context, const v1::ListSweepsRequest* request,
                          v1::ListSweepsResponse* response) override;
  grpc::Status ListTrials(grpc::ServerContext* context, const v1::ListTrialsRequest* request,
                          v1::ListTrialsResponse* response) override;
  grpc::Status GetTrial(grpc::ServerContext* context, const v1::GetTrialRequest* request,
                        v1::GetTrialResponse* response) override;
  grpc::Status Cancel(grpc::ServerContext* context, const v1::CancelRequest* request,
                      v1::CancelResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;
  grpc::Status WatchSweep(grpc::ServerContext* context, const v1::WatchSweepRequest* request,
                          grpc::ServerWriter<v1::WatchSweepEvent>* writer) override;

 private:
  Coordinator& coordinator_;
  const Authenticator& authenticator_;
};

// Worker-facing gRPC service.
class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Coordinator& coordinator, const Authenticator& authenticator)
      : coordinator_(coordinator), authenticator_(authenticator) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status AcquireTrial(grpc::ServerContext* context, const v1::AcquireTrialRequest* request,
                            v1::AcquireTrialResponse* response) override;
  grpc::Status StreamTrial(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::TrialCommand, v1::TrialUpdate>* stream) override;
  grpc::Status FinishTrial(grpc::ServerContext* context, const v1::FinishTrialRequest* request,
                           v1::FinishTrialResponse* response) override;

 private:
  Coordinator& coordinator_;
  const Authenticator& authenticator_;
};

}  // namespace sweep::server

#endif  // SWEEP_SERVER_SERVICE_H_
