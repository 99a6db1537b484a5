// Generic gRPC tools can probe and call the coordinator: the standard health service and
// server reflection, on a real coordinator process.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

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

}  // namespace
}  // namespace sweep::testing
