// Generic gRPC tools can probe and call the coordinator: the standard health service and
// server reflection, on a real coordinator process.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "reflection_client.grpc.pb.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

int RunProbe(const std::string& address, const std::filesystem::path& log) {
  Process probe(BinaryPath("server/sweep-health-probe"), {"--address", address, "--timeout", "5"},
                log);
  const std::optional<int> status = probe.Wait(std::chrono::seconds(20));
  if (!status.has_value() || !WIFEXITED(*status)) return -1;
  return WEXITSTATUS(*status);
}

TEST(ServiceEndpoints, HealthServiceReportsServing) {
  TempDir dir;
  CoordinatorProcess coordinator(dir.path(), dir.path() / "sweep.db");
  EXPECT_EQ(RunProbe(coordinator.address(), dir.path() / "probe.log"), 0)
      << (std::stringstream() << std::ifstream(dir.path() / "probe.log").rdbuf()).str();
}

TEST(ServiceEndpoints, HealthProbeFailsWithoutServer) {
  TempDir dir;
  int port = 0;
  {
    CoordinatorProcess coordinator(dir.path(), dir.path() / "sweep.db");
    port = coordinator.port();
  }
  EXPECT_EQ(RunProbe("127.0.0.1:" + std::to_string(port), dir.path() / "probe.log"), 3);
}

TEST(ServiceEndpoints, ReflectionListsServices) {
  TempDir dir;
  CoordinatorProcess coordinator(dir.path(), dir.path() / "sweep.db");
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(coordinator.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->WritesDone());
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& service : response.list_services_response().service()) {
    services.push_back(service.name());
  }
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
  for (const char* expected :
       {"sweep.v1.SweepService", "sweep.v1.WorkerService", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(services.begin(), services.end(), expected), services.end()) << expected;
  }
}

}  // namespace
}  // namespace sweep::testing
