#include "server/metrics.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics_http.h"
#include "sweep/v1/sweep.grpc.pb.h"

namespace sweep::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string RenderOrDie(const MetricsRegistry& registry) {
  absl::StatusOr<std::string> text = registry.Render();
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(MetricsRegistryTest, EmptyRegistryRendersNothing) {
  MetricsRegistry registry;

  EXPECT_EQ(RenderOrDie(registry), "");
}

TEST(MetricsRegistryTest, CounterRendersHelpTypeAndValue) {
  MetricsRegistry registry;
  Counter& rows = registry.AddCounter("rows_total", "Rows stored.");
  rows.Increment();
  rows.Increment(41);

  EXPECT_EQ(rows.value(), 42u);
  EXPECT_EQ(RenderOrDie(registry),
            "# HELP rows_total Rows stored.\n"
            "# TYPE rows_total counter\n"
            "rows_total 42\n");
}

TEST(MetricsRegistryTest, HelpEscapesBackslashAndNewline) {
  MetricsRegistry registry;
  registry.AddCounter("escaped_total", "Path C:\\tmp\nsecond line with \"quotes\".");

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP escaped_total Path C:\\\\tmp\\nsecond line with \"quotes\".\n"
            "# TYPE escaped_total counter\n"
            "escaped_total 0\n");
}

TEST(MetricsRegistryTest, CounterFamilyRendersSeriesInLabelOrder) {
  MetricsRegistry registry;
  CounterFamily& errors =
      registry.AddCounterFamily("rpc_errors_total", "Failed calls.", {"method", "code"});
  errors.WithLabels({"b/Get", "NOT_FOUND"}).Increment(2);
  errors.WithLabels({"a/List", "INTERNAL"}).Increment();
  errors.WithLabels({"b/Get", "NOT_FOUND"}).Increment();
  errors.WithLabels({"b/Get", "ABORTED"});

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP rpc_errors_total Failed calls.\n"
            "# TYPE rpc_errors_total counter\n"
            "rpc_errors_total{method=\"a/List\",code=\"INTERNAL\"} 1\n"
            "rpc_errors_total{method=\"b/Get\",code=\"ABORTED\"} 0\n"
            "rpc_errors_total{method=\"b/Get\",code=\"NOT_FOUND\"} 3\n");
}

TEST(MetricsRegistryTest, LabelValuesAreEscaped) {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounterFamily("paths_total", "Paths.", {"path"});
  family.WithLabels({"C:\\dir \"x\"\nend"}).Increment();

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP paths_total Paths.\n"
            "# TYPE paths_total counter\n"
            "paths_total{path=\"C:\\\\dir \\\"x\\\"\\nend\"} 1\n");
}

TEST(MetricsRegistryTest, LabelledFamilyWithoutSeriesRendersOnlyHeader) {
  MetricsRegistry registry;
  registry.AddCounterFamily("unused_total", "Never incremented.", {"kind"});

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP unused_total Never incremented.\n"
            "# TYPE unused_total counter\n");
}

TEST(MetricsRegistryTest, FamiliesRenderInNameOrder) {
  MetricsRegistry registry;
  registry.AddGaugeCallback("zeta", "Last.", [] { return 1.0; });
  registry.AddCounter("alpha_total", "First.");
  registry.AddGaugeCallback("mid", "Middle.", [] { return 2.0; });

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP alpha_total First.\n"
            "# TYPE alpha_total counter\n"
            "alpha_total 0\n"
            "# HELP mid Middle.\n"
            "# TYPE mid gauge\n"
            "mid 2\n"
            "# HELP zeta Last.\n"
            "# TYPE zeta gauge\n"
            "zeta 1\n");
}

TEST(MetricsRegistryTest, GaugeValuesFormat) {
  struct Case {
    double value;
    const char* expected;
  };
  const Case cases[] = {
      {0, "0"},
      {3, "3"},
      {-2, "-2"},
      {0.5, "0.5"},
      {0.0005, "0.0005"},
      {1e-05, "1e-05"},
      {123456.789, "123456.789"},
      {1e20, "1e+20"},
      {9007199254740991.0, "9007199254740991"},
      {std::nan(""), "NaN"},
      {HUGE_VAL, "+Inf"},
      {-HUGE_VAL, "-Inf"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    MetricsRegistry registry;
    const double value = c.value;
    registry.AddGaugeCallback("value", "A value.", [value] { return value; });

    EXPECT_EQ(RenderOrDie(registry),
              std::string("# HELP value A value.\n# TYPE value gauge\nvalue ") + c.expected + "\n");
  }
}

TEST(MetricsRegistryTest, HistogramRendersCumulativeBuckets) {
  MetricsRegistry registry;
  Histogram& latency = registry.AddHistogram("latency_seconds", "Latency.", {0.25, 1, 4});
  // 0.25 and 1 equal a bound and so count in that bound's bucket.
  for (const double value : {0.125, 0.25, 0.5, 1.0, 2.0, 16.0}) latency.Observe(value);

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{le=\"0.25\"} 2\n"
            "latency_seconds_bucket{le=\"1\"} 4\n"
            "latency_seconds_bucket{le=\"4\"} 5\n"
            "latency_seconds_bucket{le=\"+Inf\"} 6\n"
            "latency_seconds_sum 19.875\n"
            "latency_seconds_count 6\n");
}

TEST(MetricsRegistryTest, LatencyBucketBoundsFormat) {
  MetricsRegistry registry;
  registry.AddHistogram("wait_seconds", "Wait.", LatencyBucketsSeconds());

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP wait_seconds Wait.\n"
            "# TYPE wait_seconds histogram\n"
            "wait_seconds_bucket{le=\"0.0005\"} 0\n"
            "wait_seconds_bucket{le=\"0.001\"} 0\n"
            "wait_seconds_bucket{le=\"0.0025\"} 0\n"
            "wait_seconds_bucket{le=\"0.005\"} 0\n"
            "wait_seconds_bucket{le=\"0.01\"} 0\n"
            "wait_seconds_bucket{le=\"0.025\"} 0\n"
            "wait_seconds_bucket{le=\"0.05\"} 0\n"
            "wait_seconds_bucket{le=\"0.1\"} 0\n"
            "wait_seconds_bucket{le=\"0.25\"} 0\n"
            "wait_seconds_bucket{le=\"0.5\"} 0\n"
            "wait_seconds_bucket{le=\"1\"} 0\n"
            "wait_seconds_bucket{le=\"2.5\"} 0\n"
            "wait_seconds_bucket{le=\"5\"} 0\n"
            "wait_seconds_bucket{le=\"10\"} 0\n"
            "wait_seconds_bucket{le=\"+Inf\"} 0\n"
            "wait_seconds_sum 0\n"
            "wait_seconds_count 0\n");
}

TEST(HistogramTest, NanCountsOnlyInInfBucket) {
  Histogram histogram({1});
  histogram.Observe(std::nan(""));

  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.cumulative_counts, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(snapshot.count, 1u);
  EXPECT_TRUE(std::isnan(snapshot.sum));
}

TEST(HistogramTest, ConcurrentObservationsAllCount) {
  Histogram histogram({0.5});
  Counter counter;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10'000;

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram, &counter] {
      for (int i = 0; i < kPerThread; ++i) {
        histogram.Observe(i % 2 == 0 ? 0.25 : 1.0);
        counter.Increment();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(snapshot.cumulative_counts[0], uint64_t{kThreads * kPerThread / 2});
  EXPECT_EQ(snapshot.sum, kThreads * kPerThread / 2 * 1.25);
  EXPECT_EQ(counter.value(), uint64_t{kThreads * kPerThread});
}

TEST(ScopedLatencyTimerTest, ObservesOnceOnDestruction) {
  Histogram histogram(LatencyBucketsSeconds());
  { ScopedLatencyTimer timer(&histogram); }

  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, 1u);
  EXPECT_GE(snapshot.sum, 0.0);
}

TEST(ScopedLatencyTimerTest, NullHistogramObservesNothing) { ScopedLatencyTimer timer(nullptr); }

TEST(MetricsRegistryTest, CallbackRendersLabelledSamples) {
  MetricsRegistry registry;
  registry.AddCallback("queue_depth", "Items queued.", MetricType::kGauge, {"queue"}, [] {
    return absl::StatusOr<std::vector<Sample>>(std::vector<Sample>{{{"fast"}, 3}, {{"slow"}, 0.5}});
  });

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP queue_depth Items queued.\n"
            "# TYPE queue_depth gauge\n"
            "queue_depth{queue=\"fast\"} 3\n"
            "queue_depth{queue=\"slow\"} 0.5\n");
}

TEST(MetricsRegistryTest, CallbackErrorFailsRender) {
  MetricsRegistry registry;
  registry.AddCallback("broken", "Fails.", MetricType::kGauge, {},
                       []() -> absl::StatusOr<std::vector<Sample>> {
                         return absl::UnavailableError("database is locked");
                       });

  absl::StatusOr<std::string> text = registry.Render();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(text.status().message(), "metric broken: database is locked");
}

TEST(MetricsRegistryTest, CallbackWithWrongLabelCountFailsRender) {
  MetricsRegistry registry;
  registry.AddCallback("mislabelled", "Wrong labels.", MetricType::kGauge, {"a", "b"}, [] {
    return absl::StatusOr<std::vector<Sample>>(std::vector<Sample>{{{"only_a"}, 1}});
  });

  absl::StatusOr<std::string> text = registry.Render();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(text.status().message(), HasSubstr("mislabelled"));
}

using MetricsRegistryDeathTest = ::testing::Test;

TEST_F(MetricsRegistryDeathTest, DuplicateNameAborts) {
  MetricsRegistry registry;
  registry.AddCounter("twice_total", "First.");

  EXPECT_DEATH(registry.AddGaugeCallback("twice_total", "Second.", [] { return 0.0; }), "");
}

TEST_F(MetricsRegistryDeathTest, InvalidNamesAbort) {
  MetricsRegistry registry;

  EXPECT_DEATH(registry.AddCounter("0starts_with_digit", "Bad."), "");
  EXPECT_DEATH(registry.AddCounter("has-dash", "Bad."), "");
  EXPECT_DEATH(registry.AddCounterFamily("ok_total", "Bad label.", {"__reserved"}), "");
  EXPECT_DEATH(registry.AddCounterFamily("ok_total", "Repeated label.", {"a", "a"}), "");
  EXPECT_DEATH(registry.AddCounter("no_help_total", ""), "");
}

TEST_F(MetricsRegistryDeathTest, InvalidBoundsAbort) {
  MetricsRegistry registry;

  EXPECT_DEATH(registry.AddHistogram("unsorted", "Bad.", {1, 0.5}), "");
  EXPECT_DEATH(registry.AddHistogram("repeated", "Bad.", {1, 1}), "");
  EXPECT_DEATH(registry.AddHistogram("infinite", "Bad.", {1, HUGE_VAL}), "");
}

TEST_F(MetricsRegistryDeathTest, WrongLabelValueCountAborts) {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounterFamily("pairs_total", "Pairs.", {"a", "b"});

  EXPECT_DEATH(family.WithLabels({"only_a"}), "");
}

TEST(ProcessMetricsTest, ReportsPlausibleValues) {
  MetricsRegistry registry;
  AddProcessMetrics(registry);

  const std::string text = RenderOrDie(registry);
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_max_fds gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_open_fds gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_resident_memory_bytes gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_start_time_seconds gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_virtual_memory_bytes gauge\n"));

  auto value_of = [&text](const std::string& name) {
    const size_t line = text.find("\n" + name + " ");
    EXPECT_NE(line, std::string::npos) << name;
    return line == std::string::npos ? -1.0 : std::stod(text.substr(line + name.size() + 2));
  };
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_GE(value_of("process_cpu_seconds_total"), 0.0);
  EXPECT_GT(value_of("process_resident_memory_bytes"), 1e5);
  EXPECT_GE(value_of("process_virtual_memory_bytes"), value_of("process_resident_memory_bytes"));
  EXPECT_GT(value_of("process_start_time_seconds"), now - 3600);
  EXPECT_LE(value_of("process_start_time_seconds"), now + 1);
  EXPECT_GE(value_of("process_open_fds"), 3.0);
  EXPECT_GE(value_of("process_max_fds"), value_of("process_open_fds"));
}

TEST(CoordinatorMetricsTest, RegistersNamesAndTypes) {
  MetricsRegistry registry;
  CoordinatorMetrics metrics(registry);
  metrics.metric_rows_written.Increment(7);
  metrics.acquire_latency.Observe(0.003);
  metrics.rpc_errors.WithLabels({"sweep.v1.SweepService/GetSweep", "NOT_FOUND"}).Increment();

  const std::string text = RenderOrDie(registry);
  EXPECT_THAT(text, HasSubstr("# TYPE sweep_acquire_latency_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("sweep_acquire_latency_seconds_bucket{le=\"0.0025\"} 0\n"
                              "sweep_acquire_latency_seconds_bucket{le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE sweep_report_latency_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE sweep_metric_rows_written_total counter\n"
                              "sweep_metric_rows_written_total 7\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE sweep_rpc_errors_total counter\n"
                              "sweep_rpc_errors_total{method=\"sweep.v1.SweepService/GetSweep\","
                              "code=\"NOT_FOUND\"} 1\n"));
}

TEST(StoreGaugesTest, FillsMissingStatesWithZero) {
  MetricsRegistry registry;
  AddStoreGauges(
      registry,
      [] {
        return absl::StatusOr<std::map<v1::TrialState, int64_t>>(std::map<v1::TrialState, int64_t>{
            {v1::TRIAL_STATE_RUNNING, 2}, {v1::TRIAL_STATE_PENDING, 5}});
      },
      [] { return absl::StatusOr<int64_t>(3); });

  EXPECT_EQ(RenderOrDie(registry),
            "# HELP sweep_active_workers Workers that count as active.\n"
            "# TYPE sweep_active_workers gauge\n"
            "sweep_active_workers 3\n"
            "# HELP sweep_trials Trials in the store by state.\n"
            "# TYPE sweep_trials gauge\n"
            "sweep_trials{state=\"pending\"} 5\n"
            "sweep_trials{state=\"running\"} 2\n"
            "sweep_trials{state=\"completed\"} 0\n"
            "sweep_trials{state=\"failed\"} 0\n"
            "sweep_trials{state=\"cancelled\"} 0\n"
            "sweep_trials{state=\"stopped\"} 0\n");
}

TEST(StoreGaugesTest, StoreErrorFailsRender) {
  MetricsRegistry registry;
  AddStoreGauges(
      registry,
      []() -> absl::StatusOr<std::map<v1::TrialState, int64_t>> {
        return absl::UnavailableError("database is locked");
      },
      [] { return absl::StatusOr<int64_t>(0); });

  absl::StatusOr<std::string> text = registry.Render();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "metric sweep_trials: database is locked");
}

// Returns NOT_FOUND from GetSweep and OK from ListSweeps.
class FakeSweepService final : public v1::SweepService::Service {
  grpc::Status GetSweep(grpc::ServerContext*, const v1::GetSweepRequest* request,
                        v1::Sweep*) override {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "sweep " + std::to_string(request->sweep_id()) + " not found");
  }
  grpc::Status ListSweeps(grpc::ServerContext*, const v1::ListSweepsRequest*,
                          v1::ListSweepsResponse*) override {
    return grpc::Status::OK;
  }
};

TEST(RpcErrorInterceptorTest, CountsOnlyFailedCalls) {
  MetricsRegistry registry;
  CoordinatorMetrics metrics(registry);
  FakeSweepService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(MakeRpcErrorInterceptorFactory(metrics.rpc_errors));
  builder.experimental().SetInterceptorCreators(std::move(factories));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_NE(port, 0);

  auto stub = v1::SweepService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    v1::GetSweepRequest request;
    request.set_sweep_id(7);
    v1::Sweep sweep;
    EXPECT_EQ(stub->GetSweep(&context, request, &sweep).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::ListSweepsResponse response;
    EXPECT_TRUE(stub->ListSweeps(&context, v1::ListSweepsRequest(), &response).ok());
  }
  server->Shutdown();

  const auto collected = metrics.rpc_errors.Collect();
  ASSERT_EQ(collected.size(), 1u);
  EXPECT_EQ(collected[0].first,
            (std::vector<std::string>{"sweep.v1.SweepService/GetSweep", "NOT_FOUND"}));
  EXPECT_EQ(collected[0].second, 2u);
}

TEST(ParseListenAddressTest, AcceptsHostPortForms) {
  struct Case {
    const char* address;
    const char* host;
    int port;
  };
  const Case cases[] = {
      {"127.0.0.1:9464", "127.0.0.1", 9464}, {":9464", "127.0.0.1", 9464},
      {"0.0.0.0:0", "0.0.0.0", 0},           {"localhost:65535", "localhost", 65535},
      {"[::1]:9464", "::1", 9464},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.address);
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(c.address);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->host, c.host);
    EXPECT_EQ(parsed->port, c.port);
  }
}

TEST(ParseListenAddressTest, RejectsMalformedAddresses) {
  for (const char* address : {"", "9464", "host:", "host:abc", "host:9464x", "host:-1",
                              "host:65536", "[::1]9464", "[::1:9464", "[::1]:"}) {
    SCOPED_TRACE(address);
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(address);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  // Starts `server_` on a free loopback port and returns a client for it.
  std::unique_ptr<httplib::Client> StartAndConnect() {
    const absl::Status started = server_.Start({"127.0.0.1", 0});
    EXPECT_TRUE(started.ok()) << started;
    EXPECT_GT(server_.port(), 0);
    auto client = std::make_unique<httplib::Client>("127.0.0.1", server_.port());
    client->set_connection_timeout(std::chrono::seconds(5));
    client->set_read_timeout(std::chrono::seconds(5));
    return client;
  }

  MetricsRegistry registry_;
  MetricsHttpServer server_{registry_};
};

TEST_F(MetricsHttpServerTest, ServesMetricsWithContentType) {
  registry_.AddCounter("served_total", "Served.").Increment(3);
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  httplib::Result result = client->Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(result->body,
            "# HELP served_total Served.\n"
            "# TYPE served_total counter\n"
            "served_total 3\n");
}

TEST_F(MetricsHttpServerTest, ServesCurrentValues) {
  Counter& counter = registry_.AddCounter("changing_total", "Changes.");
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  counter.Increment(5);
  httplib::Result result = client->Get("/metrics");

  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_THAT(result->body, HasSubstr("changing_total 5\n"));
}

TEST_F(MetricsHttpServerTest, HeadReturnsHeadersOnly) {
  registry_.AddCounter("head_total", "Head.");
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  httplib::Result result = client->Head("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(result->body, "");
}

TEST_F(MetricsHttpServerTest, OtherPathsReturn404) {
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  for (const char* path : {"/", "/metrics/extra", "/metricsx", "/health"}) {
    SCOPED_TRACE(path);
    httplib::Result result = client->Get(path);
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    EXPECT_EQ(result->status, 404);
  }
}

TEST_F(MetricsHttpServerTest, PostToMetricsIsRejected) {
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  httplib::Result result = client->Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 404);
}

TEST_F(MetricsHttpServerTest, RenderErrorReturns500) {
  registry_.AddCallback("broken", "Fails.", MetricType::kGauge, {},
                        []() -> absl::StatusOr<std::vector<Sample>> {
                          return absl::UnavailableError("database is locked");
                        });
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  httplib::Result result = client->Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 500);
  EXPECT_EQ(result->body, "metric broken: database is locked\n");
}

TEST_F(MetricsHttpServerTest, SecondStartFails) {
  StartAndConnect();

  const absl::Status again = server_.Start({"127.0.0.1", 0});
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(MetricsHttpServerTest, BusyPortFails) {
  StartAndConnect();
  MetricsHttpServer other(registry_);

  const absl::Status started = other.Start({"127.0.0.1", server_.port()});
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(other.port(), 0);
}

TEST_F(MetricsHttpServerTest, StopClosesPort) {
  std::unique_ptr<httplib::Client> client = StartAndConnect();
  ASSERT_TRUE(client->Get("/metrics"));
  const int port = server_.port();

  server_.Stop();
  EXPECT_EQ(server_.port(), 0);
  httplib::Client fresh("127.0.0.1", port);
  fresh.set_connection_timeout(std::chrono::seconds(2));
  EXPECT_FALSE(fresh.Get("/metrics"));
}

TEST_F(MetricsHttpServerTest, StopSkipsIdleKeepAliveConnection) {
  std::unique_ptr<httplib::Client> client = StartAndConnect();
  client->set_keep_alive(true);
  ASSERT_TRUE(client->Get("/metrics"));

  const auto start = std::chrono::steady_clock::now();
  server_.Stop();
  const auto elapsed = std::chrono::steady_clock::now() - start;

  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST_F(MetricsHttpServerTest, StopBoundsSilentConnectionWait) {
  StartAndConnect();
  const int socket_fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(socket_fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(server_.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);

  const auto start = std::chrono::steady_clock::now();
  server_.Stop();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  close(socket_fd);

  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

TEST_F(MetricsHttpServerTest, RestartsAfterStop) {
  // Stop right after Start must not miss the server thread, which would hang in join().
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(server_.Start({"127.0.0.1", 0}).ok());
    server_.Stop();
  }
  std::unique_ptr<httplib::Client> client = StartAndConnect();

  httplib::Result result = client->Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
}

TEST(MetricsHttpServerStopTest, StopWithoutStartDoesNothing) {
  MetricsRegistry registry;
  MetricsHttpServer server(registry);

  server.Stop();
  EXPECT_EQ(server.port(), 0);
}

}  // namespace
}  // namespace sweep::server
