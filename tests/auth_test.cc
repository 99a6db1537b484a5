// Token authentication and TLS with real processes on loopback: a coordinator started with
// client and worker tokens or a certificate, the `sweep` binary, and workers running the
// simulated trainer (a test double that trains nothing).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/coordinator_client.h"
#include "client/exit_code.h"
#include "gmock/gmock.h"
#include "sweep/v1/sweep.grpc.pb.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOneTrialGrid[] = R"({"num_epochs": [1]})";
constexpr char kTokenFix[] = "pass the client token with --token-file or SWEEP_CLIENT_TOKEN";
constexpr auto kSweepTimeout = std::chrono::seconds(60);

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  ASSERT_TRUE(file.good()) << "cannot write " << path;
}

// A token that no other test or stale environment can guess.
std::string RandomToken(const std::string& prefix) {
  std::random_device device;
  std::string token = prefix + "-";
  for (int i = 0; i < 4; ++i) absl::StrAppend(&token, absl::Hex(device(), absl::kZeroPad8));
  return token;
}

// Returns the full path of `name` in a $PATH directory, or nullopt.
std::optional<std::filesystem::path> FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  const std::vector<std::string> directories = absl::StrSplit(path, ':', absl::SkipEmpty());
  for (const std::string& directory : directories) {
    std::filesystem::path candidate = std::filesystem::path(directory) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The coordinator reads these variables when a token flag is missing, and the CLI and
// the worker read them when --token-file is missing. A developer's shell may set them.
void ClearTokenEnvironment() {
  unsetenv("SWEEP_CLIENT_TOKEN");
  unsetenv("SWEEP_WORKER_TOKEN");
}

// Runs `sweep ARGUMENTS...` with `environment` changes applied as RunCommand describes.
CommandResult RunSweep(const std::filesystem::path& dir, const std::vector<std::string>& arguments,
                       const std::vector<std::string>& environment = {}) {
  CommandResult result = RunCommand(BinaryPath("client/sweep"), arguments, dir, environment);
  EXPECT_FALSE(result.timed_out) << "sweep " << absl::StrJoin(arguments, " ");
  return result;
}

// Submits a one-trial sweep with `connection` arguments and returns its id, or 0 after
// failing the test.
int64_t SubmitOneTrial(const std::filesystem::path& dir, std::vector<std::string> connection) {
  const std::filesystem::path grid = dir / "grid.json";
  WriteFile(grid, kOneTrialGrid);
  std::vector<std::string> arguments = std::move(connection);
  arguments.insert(arguments.end(),
                   {"submit", grid.string(), "--grid-size", "1", "--seed", "1", "--name", "auth"});
  CommandResult submit = RunSweep(dir, arguments);
  EXPECT_EQ(submit.exit_code, 0) << submit.err;
  int64_t sweep_id = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(submit.out), &sweep_id)) << submit.out;
  return sweep_id;
}

std::vector<std::string> SimulatedWorkerArguments(const std::string& address) {
  return {"--coordinator",
          address,
          "--simulated-trainer",
          "--simulated-step-ms",
          "5",
          "--acquire-wait-seconds",
          "1",
          "--log-level",
          "debug"};
}

grpc::Status RegisterWorker(const std::string& address, const std::string& token,
                            v1::RegisterWorkerResponse& response) {
  std::unique_ptr<v1::WorkerService::Stub> stub =
      v1::WorkerService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::RegisterWorkerRequest request;
  request.set_host("auth-test");
  request.set_device("cpu");
  return stub->RegisterWorker(&context, request, &response);
}

TEST(ClientExitCode, UnauthenticatedIsSix) {
  EXPECT_EQ(static_cast<int>(client::ExitCodeForStatus(absl::UnauthenticatedError("token"))), 6);
}

TEST(LoadChannelSecurity, TokenFileLosesTrailingLineBreaks) {
  TempDir dir;
  WriteFile(dir.path() / "token", "secret-value\r\n\n");
  absl::StatusOr<client::ChannelSecurity> security =
      client::LoadChannelSecurity((dir.path() / "token").string(), "from-environment", "", "");
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_EQ(security->token, "secret-value");
  EXPECT_EQ(security->token_source, "--token-file " + (dir.path() / "token").string());
}

TEST(LoadChannelSecurity, EnvironmentTokenWithoutFile) {
  absl::StatusOr<client::ChannelSecurity> security =
      client::LoadChannelSecurity("", "from-environment", "", "");
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_EQ(security->token, "from-environment");
  EXPECT_EQ(security->token_source, "SWEEP_CLIENT_TOKEN");
}

TEST(LoadChannelSecurity, RejectsBadFilesWithoutShowingToken) {
  TempDir dir;
  WriteFile(dir.path() / "empty", "\n");
  WriteFile(dir.path() / "two-lines", "secret-one\nsecret-two\n");
  WriteFile(dir.path() / "not-pem", "secret-ca");
  struct Case {
    std::string token_file;
    std::string tls_ca_file;
    std::string tls_server_name;
    std::string expected_message;
  };
  const Case cases[] = {
      {(dir.path() / "missing").string(), "", "", "cannot be read"},
      {(dir.path() / "empty").string(), "", "", "is empty"},
      {(dir.path() / "two-lines").string(), "", "", "one line of printable ASCII"},
      {"", (dir.path() / "not-pem").string(), "", "contains no PEM certificate"},
      {"", (dir.path() / "missing").string(), "", "cannot be read"},
      {"", "", "localhost", "--tls-server-name needs --tls-ca"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected_message + " " + c.token_file + c.tls_ca_file);
    absl::StatusOr<client::ChannelSecurity> security =
        client::LoadChannelSecurity(c.token_file, nullptr, c.tls_ca_file, c.tls_server_name);
    ASSERT_FALSE(security.ok());
    EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(security.status().message(), HasSubstr(c.expected_message));
    EXPECT_THAT(security.status().message(), Not(HasSubstr("secret")));
  }
}

// A coordinator that requires a client token on SweepService and a worker token on
// WorkerService.
class TokenAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClearTokenEnvironment();
    client_token_ = RandomToken("client");
    worker_token_ = RandomToken("worker");
    wrong_token_ = RandomToken("wrong");
    client_token_file_ = dir_.path() / "client.token";
    worker_token_file_ = dir_.path() / "worker.token";
    wrong_token_file_ = dir_.path() / "wrong.token";
    WriteFile(client_token_file_, client_token_ + "\n");
    WriteFile(worker_token_file_, worker_token_ + "\n");
    WriteFile(wrong_token_file_, wrong_token_ + "\n");
    coordinator_ = std::make_unique<CoordinatorProcess>(
        dir_.path(), dir_.path() / "sweep.db",
        std::vector<std::string>{"--client-token-file", client_token_file_.string(),
                                 "--worker-token-file", worker_token_file_.string()});
  }

  // Runs `sweep --coordinator ADDRESS ARGUMENTS...`.
  CommandResult Sweep(std::vector<std::string> arguments,
                      const std::vector<std::string>& environment = {}) {
    arguments.insert(arguments.begin(), {"--coordinator", coordinator_->address()});
    return RunSweep(dir_.path(), arguments, environment);
  }

  void ExpectNoToken(const std::string& text) {
    EXPECT_THAT(text, Not(HasSubstr(client_token_)));
    EXPECT_THAT(text, Not(HasSubstr(worker_token_)));
    EXPECT_THAT(text, Not(HasSubstr(wrong_token_)));
  }

  TempDir dir_;
  std::string client_token_;
  std::string worker_token_;
  std::string wrong_token_;
  std::filesystem::path client_token_file_;
  std::filesystem::path worker_token_file_;
  std::filesystem::path wrong_token_file_;
  std::unique_ptr<CoordinatorProcess> coordinator_;
};

TEST_F(TokenAuthTest, CliWithClientTokenSucceeds) {
  struct Case {
    std::string name;
    std::vector<std::string> arguments;
    std::vector<std::string> environment;
  };
  const Case cases[] = {
      {"token file", {"--token-file", client_token_file_.string(), "status"}, {}},
      {"flag after command", {"status", "--token-file", client_token_file_.string()}, {}},
      {"environment", {"status"}, {"SWEEP_CLIENT_TOKEN=" + client_token_}},
      {"file wins over environment",
       {"--token-file", client_token_file_.string(), "status"},
       {"SWEEP_CLIENT_TOKEN=" + worker_token_}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CommandResult run = Sweep(c.arguments, c.environment);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    ExpectNoToken(run.out + run.err);
  }
}

TEST_F(TokenAuthTest, CliWithRejectedTokenExitsSix) {
  struct Case {
    std::string name;
    std::vector<std::string> arguments;
    std::vector<std::string> environment;
    std::string expected_message;
  };
  const Case cases[] = {
      {"missing", {"status"}, {}, "requires a client token and none was sent"},
      {"wrong file",
       {"--token-file", wrong_token_file_.string(), "status"},
       {},
       "rejected the client token from --token-file " + wrong_token_file_.string()},
      {"worker token file",
       {"--token-file", worker_token_file_.string(), "status"},
       {},
       "rejected the client token from --token-file " + worker_token_file_.string()},
      {"wrong environment",
       {"status"},
       {"SWEEP_CLIENT_TOKEN=" + wrong_token_},
       "rejected the client token from SWEEP_CLIENT_TOKEN"},
      {"watch without token", {"watch", "1"}, {}, "requires a client token"},
      {"submit with worker token",
       {"--token-file", worker_token_file_.string(), "submit", "--grid-size", "1", "--seed", "1",
        (dir_.path() / "grid.json").string()},
       {},
       "rejected the client token"},
  };
  WriteFile(dir_.path() / "grid.json", kOneTrialGrid);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CommandResult run = Sweep(c.arguments, c.environment);
    EXPECT_EQ(run.exit_code, static_cast<int>(client::kExitUnauthenticated)) << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.expected_message));
    EXPECT_THAT(run.err, HasSubstr(kTokenFix));
    ExpectNoToken(run.out + run.err);
  }
}

TEST_F(TokenAuthTest, UnreadableTokenFileExitsTwo) {
  CommandResult run = Sweep({"--token-file", (dir_.path() / "missing.token").string(), "status"});
  EXPECT_EQ(run.exit_code, static_cast<int>(client::kExitInvalidInput));
  EXPECT_THAT(run.err, HasSubstr("--token-file file"));
}

TEST_F(TokenAuthTest, WorkerServiceNeedsWorkerToken) {
  v1::RegisterWorkerResponse response;
  grpc::Status without_token = RegisterWorker(coordinator_->address(), "", response);
  EXPECT_EQ(without_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status client_token = RegisterWorker(coordinator_->address(), client_token_, response);
  EXPECT_EQ(client_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status wrong_token = RegisterWorker(coordinator_->address(), wrong_token_, response);
  EXPECT_EQ(wrong_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  grpc::Status worker_token = RegisterWorker(coordinator_->address(), worker_token_, response);
  EXPECT_TRUE(worker_token.ok()) << worker_token.error_message();
  EXPECT_GT(response.worker_id(), 0);
}

TEST_F(TokenAuthTest, WorkerWithTokenCompletesSweep) {
  // A rejected call first, so that the log check below also covers rejections.
  CommandResult rejected = Sweep({"--token-file", wrong_token_file_.string(), "status"});
  EXPECT_EQ(rejected.exit_code, static_cast<int>(client::kExitUnauthenticated)) << rejected.err;
  const std::vector<std::string> connection = {"--coordinator", coordinator_->address(),
                                               "--token-file", client_token_file_.string()};
  const int64_t sweep_id = SubmitOneTrial(dir_.path(), connection);
  ASSERT_GT(sweep_id, 0);

  std::vector<std::string> worker_arguments = SimulatedWorkerArguments(coordinator_->address());
  worker_arguments.insert(worker_arguments.end(), {"--token-file", worker_token_file_.string()});
  Process worker(BinaryPath("worker/sweep-worker"), worker_arguments, dir_.path() / "worker.log");
  std::vector<std::string> watch = connection;
  watch.insert(watch.end(), {"watch", std::to_string(sweep_id)});
  CommandResult run = RunCommand(BinaryPath("client/sweep"), watch, dir_.path(), {}, kSweepTimeout);

  EXPECT_FALSE(run.timed_out) << worker.Log();
  EXPECT_EQ(run.exit_code, 0) << run.err << worker.Log();
  EXPECT_THAT(run.out, HasSubstr("completed"));
  const std::string coordinator_log = coordinator_->process().Log();
  EXPECT_THAT(coordinator_log, HasSubstr("rejected a call"));
  ExpectNoToken(coordinator_log);
  ExpectNoToken(worker.Log());
  ExpectNoToken(run.out + run.err);
}

// Throwaway certificates made with the openssl command: a CA, a server certificate for
// localhost and 127.0.0.1 signed by it, and a second CA that signed nothing.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::optional<std::filesystem::path> openssl = FindProgram("openssl");
    if (!openssl.has_value()) return;
    openssl_ = new std::filesystem::path(*openssl);
    certificates_ = new TempDir();
    setup_error_ = new std::string(MakeCertificates(*openssl_, certificates_->path()));
  }

  static void TearDownTestSuite() {
    delete openssl_;
    openssl_ = nullptr;
    delete certificates_;
    certificates_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }

  // Returns an empty string on success, else the failed command's output.
  static std::string MakeCertificates(const std::filesystem::path& openssl,
                                      const std::filesystem::path& dir) {
    std::ofstream(dir / "ca.cnf") << "[req]\n"
                                     "distinguished_name = dn\n"
                                     "prompt = no\n"
                                     "[dn]\n"
                                     "CN = sweep test CA\n"
                                     "[ca]\n"
                                     "basicConstraints = critical, CA:TRUE\n"
                                     "keyUsage = critical, keyCertSign, cRLSign\n"
                                     "subjectKeyIdentifier = hash\n";
    std::ofstream(dir / "server.cnf") << "[req]\n"
                                         "distinguished_name = dn\n"
                                         "prompt = no\n"
                                         "[dn]\n"
                                         "CN = localhost\n";
    std::ofstream(dir / "server-extensions.cnf")
        << "basicConstraints = CA:FALSE\n"
           "keyUsage = critical, digitalSignature, keyEncipherment\n"
           "extendedKeyUsage = serverAuth\n"
           "subjectAltName = DNS:localhost, IP:127.0.0.1\n";
    const auto path = [&](const char* name) { return (dir / name).string(); };
    const std::vector<std::vector<std::string>> commands = {
        {"req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-days", "2", "-config",
         path("ca.cnf"), "-extensions", "ca", "-keyout", path("ca.key"), "-out", path("ca.pem")},
        {"req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-days", "2", "-config",
         path("ca.cnf"), "-extensions", "ca", "-keyout", path("other-ca.key"), "-out",
         path("other-ca.pem")},
        {"req", "-new", "-nodes", "-newkey", "rsa:2048", "-config", path("server.cnf"), "-keyout",
         path("server.key"), "-out", path("server.csr")},
        {"x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
         "-set_serial", "2", "-days", "2", "-extfile", path("server-extensions.cnf"), "-out",
         path("server.pem")},
    };
    for (const std::vector<std::string>& arguments : commands) {
      CommandResult run = RunCommand(openssl.string(), arguments, dir);
      if (run.exit_code != 0) {
        return absl::StrCat("openssl ", absl::StrJoin(arguments, " "), " failed: ", run.err);
      }
    }
    return "";
  }

  void SetUp() override {
    if (openssl_ == nullptr) GTEST_SKIP() << "openssl is not installed";
    ASSERT_EQ(*setup_error_, "");
    ClearTokenEnvironment();
  }

  static std::string Certificate(const char* name) {
    return (certificates_->path() / name).string();
  }

  std::vector<std::string> TlsArguments() {
    return {"--tls-cert", Certificate("server.pem"), "--tls-key", Certificate("server.key")};
  }

  // Runs `sweep --timeout 5 ARGUMENTS...`.
  CommandResult Sweep(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {"--timeout", "5"});
    return RunSweep(dir_.path(), arguments);
  }

  static std::filesystem::path* openssl_;
  static TempDir* certificates_;
  static std::string* setup_error_;
  TempDir dir_;
};

std::filesystem::path* TlsTest::openssl_ = nullptr;
TempDir* TlsTest::certificates_ = nullptr;
std::string* TlsTest::setup_error_ = nullptr;

TEST_F(TlsTest, CliWithCaSucceeds) {
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db", TlsArguments());
  const std::string port = std::to_string(coordinator.port());
  const std::vector<std::vector<std::string>> cases = {
      {"--coordinator", "localhost:" + port, "--tls-ca", Certificate("ca.pem"), "status"},
      {"--coordinator", "127.0.0.1:" + port, "--tls-ca", Certificate("ca.pem"), "status"},
      {"--coordinator", "127.0.0.1:" + port, "--tls-ca", Certificate("ca.pem"), "--tls-server-name",
       "localhost", "status"},
  };
  for (const std::vector<std::string>& arguments : cases) {
    SCOPED_TRACE(absl::StrJoin(arguments, " "));
    CommandResult run = Sweep(arguments);
    EXPECT_EQ(run.exit_code, 0) << run.err;
  }
}

TEST_F(TlsTest, CliThatCannotVerifyExitsFour) {
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db", TlsArguments());
  const std::string address = "localhost:" + std::to_string(coordinator.port());
  struct Case {
    std::string name;
    std::vector<std::string> arguments;
    std::string expected_message;
  };
  const Case cases[] = {
      {"plaintext", {"--coordinator", address, "status"}, "--tls-ca when the coordinator uses TLS"},
      {"other CA",
       {"--coordinator", address, "--tls-ca", Certificate("other-ca.pem"), "status"},
       "--tls-ca " + Certificate("other-ca.pem") + " verifies"},
      {"other server name",
       {"--coordinator", address, "--tls-ca", Certificate("ca.pem"), "--tls-server-name",
        "other.invalid", "status"},
       "cannot reach coordinator"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CommandResult run = Sweep(c.arguments);
    EXPECT_EQ(run.exit_code, static_cast<int>(client::kExitUnavailable)) << run.err;
    EXPECT_THAT(run.err, HasSubstr(c.expected_message));
  }
}

TEST_F(TlsTest, TlsCliAgainstPlaintextServerExitsFour) {
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db");
  CommandResult run = Sweep({"--coordinator", "localhost:" + std::to_string(coordinator.port()),
                             "--tls-ca", Certificate("ca.pem"), "status"});
  EXPECT_EQ(run.exit_code, static_cast<int>(client::kExitUnavailable)) << run.err;
  EXPECT_THAT(run.err, HasSubstr("check that the coordinator uses TLS"));
}

TEST_F(TlsTest, WorkerWithCaCompletesTrial) {
  const std::string client_token = RandomToken("client");
  const std::string worker_token = RandomToken("worker");
  WriteFile(dir_.path() / "client.token", client_token);
  WriteFile(dir_.path() / "worker.token", worker_token);
  std::vector<std::string> coordinator_arguments = TlsArguments();
  coordinator_arguments.insert(coordinator_arguments.end(),
                               {"--client-token-file", (dir_.path() / "client.token").string(),
                                "--worker-token-file", (dir_.path() / "worker.token").string()});
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db", coordinator_arguments);
  const std::string address = "localhost:" + std::to_string(coordinator.port());
  const std::vector<std::string> connection = {
      "--coordinator",       address,        "--tls-ca",
      Certificate("ca.pem"), "--token-file", (dir_.path() / "client.token").string()};
  const int64_t sweep_id = SubmitOneTrial(dir_.path(), connection);
  ASSERT_GT(sweep_id, 0);

  std::vector<std::string> worker_arguments = SimulatedWorkerArguments(address);
  worker_arguments.insert(
      worker_arguments.end(),
      {"--tls-ca", Certificate("ca.pem"), "--token-file", (dir_.path() / "worker.token").string()});
  Process worker(BinaryPath("worker/sweep-worker"), worker_arguments, dir_.path() / "worker.log");
  std::vector<std::string> watch = connection;
  watch.insert(watch.end(), {"watch", std::to_string(sweep_id)});
  CommandResult run = RunCommand(BinaryPath("client/sweep"), watch, dir_.path(), {}, kSweepTimeout);

  EXPECT_FALSE(run.timed_out) << worker.Log();
  EXPECT_EQ(run.exit_code, 0) << run.err << worker.Log();
  const std::string coordinator_log = coordinator.process().Log();
  EXPECT_THAT(coordinator_log, HasSubstr("(TLS)"));
  EXPECT_THAT(coordinator_log, Not(HasSubstr(client_token)));
  EXPECT_THAT(coordinator_log, Not(HasSubstr(worker_token)));
}

}  // namespace
}  // namespace sweep::testing
