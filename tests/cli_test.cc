#include "client/cli.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/exit_code.h"
#include "client/export.h"
#include "client/format.h"
#include "client/submit_view.h"
#include "client/views.h"
#include "client/watch_view.h"
#include "common/search_space.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli_test_util.h"

namespace sweep::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

void AddParam(v1::Trial& trial, const std::string& name, int64_t value) {
  v1::Param* param = trial.add_params();
  param->set_name(name);
  param->mutable_value()->set_int_value(value);
}

void AddParam(v1::Trial& trial, const std::string& name, double value) {
  v1::Param* param = trial.add_params();
  param->set_name(name);
  param->mutable_value()->set_double_value(value);
}

void AddMetric(v1::Trial& trial, const std::string& name, double value) {
  v1::Metric* metric = trial.add_metrics();
  metric->set_name(name);
  metric->set_value(value);
}

v1::Trial TrialWithAccuracy(int64_t id, double val_accuracy) {
  v1::Trial trial;
  trial.set_id(id);
  trial.set_state(v1::TRIAL_STATE_COMPLETED);
  AddMetric(trial, "val_accuracy", val_accuracy);
  return trial;
}

std::vector<int64_t> Ids(const std::vector<v1::Trial>& trials) {
  std::vector<int64_t> ids;
  for (const auto& trial : trials) ids.push_back(trial.id());
  return ids;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

v1::StoredMetric Row(int32_t attempt, int32_t epoch, int64_t step, const std::string& name,
                     double value) {
  v1::StoredMetric stored;
  stored.set_attempt(attempt);
  stored.mutable_row()->set_epoch(epoch);
  stored.mutable_row()->set_step(step);
  stored.mutable_row()->set_name(name);
  stored.mutable_row()->set_value(value);
  return stored;
}

std::string WriteTempFile(const std::string& name, const std::string& contents) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

// --- Table, CSV and JSON primitives ---

TEST(TableTest, PadsColumnsToWidestCell) {
  Table table({"id", "name"});
  table.AddRow({"1", "long-name"});
  table.AddRow({"22", "x"});
  EXPECT_EQ(table.Render(),
            "id  name\n"
            "1   long-name\n"
            "22  x\n");
}

TEST(TableTest, CountsCodePointsNotBytes) {
  Table table({"a", "b"});
  table.AddRow({"\xC3\xA9t\xC3\xA9", "x"});  // "été": 3 code points, 5 bytes.
  EXPECT_EQ(table.Render(),
            "a    b\n"
            "\xC3\xA9t\xC3\xA9  x\n");
}

TEST(TableTest, PadsShortRowsWithEmptyCells) {
  Table table({"a", "b", "c"});
  table.AddRow({"1"});
  EXPECT_EQ(table.Render(), "a  b  c\n1\n");
}

TEST(CsvFieldTest, QuotesOnlyWhenNeeded) {
  struct Case {
    std::string field;
    std::string expected;
  };
  const Case cases[] = {
      {"plain", "plain"},
      {"", ""},
      {"a,b", "\"a,b\""},
      {"say \"hi\"", "\"say \"\"hi\"\"\""},
      {"line\nbreak", "\"line\nbreak\""},
      {"carriage\rreturn", "\"carriage\rreturn\""},
      {" spaced ", " spaced "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    EXPECT_EQ(CsvField(c.field), c.expected);
  }
}

TEST(CsvRecordTest, JoinsFieldsAndEndsWithNewline) {
  EXPECT_EQ(CsvRecord({"1", "a,b", "x"}), "1,\"a,b\",x\n");
}

TEST(JsonNumberTest, NonFiniteBecomesNull) {
  EXPECT_TRUE(JsonNumber(kNaN).is_null());
  EXPECT_TRUE(JsonNumber(kInf).is_null());
  EXPECT_TRUE(JsonNumber(-kInf).is_null());
}

TEST(JsonNumberTest, FiniteKeepsExactDigits) {
  EXPECT_EQ(JsonText(JsonNumber(0.1), -1), "0.1");
  EXPECT_EQ(JsonText(JsonNumber(0.30000000000000004), -1), "0.30000000000000004");
}

TEST(JsonTextTest, ReplacesInvalidUtf8) {
  nlohmann::json json = std::string("bad \xFF byte");
  EXPECT_EQ(JsonText(json, -1), "\"bad \xEF\xBF\xBD byte\"");
}

TEST(FormatParamValueTest, PrintsExactValues) {
  v1::ParamValue value;
  value.set_double_value(1e-05);
  EXPECT_EQ(FormatParamValue(value), "1e-05");
  value.set_double_value(0.1);
  EXPECT_EQ(FormatParamValue(value), "0.1");
  value.set_int_value(128);
  EXPECT_EQ(FormatParamValue(value), "128");
  value.set_string_value("flip");
  EXPECT_EQ(FormatParamValue(value), "flip");
  value.set_bool_value(true);
  EXPECT_EQ(FormatParamValue(value), "true");
  EXPECT_EQ(FormatParamValue(v1::ParamValue()), "");
}

TEST(ParamValueToJsonTest, UnsetIsNull) {
  EXPECT_TRUE(ParamValueToJson(v1::ParamValue()).is_null());
}

TEST(ParseTrialStateTest, AcceptsShortAndEnumNames) {
  EXPECT_EQ(ParseTrialState("completed").value(), v1::TRIAL_STATE_COMPLETED);
  EXPECT_EQ(ParseTrialState("Running").value(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(ParseTrialState("TRIAL_STATE_STOPPED").value(), v1::TRIAL_STATE_STOPPED);
}

TEST(ParseTrialStateTest, RejectsUnknownName) {
  absl::StatusOr<v1::TrialState> state = ParseTrialState("done");
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(state.status().message(), HasSubstr("pending, running, completed"));
}

TEST(SortTrialsBestFirstTest, NonFiniteAndMissingNeverRankBest) {
  v1::Trial missing;
  missing.set_id(5);
  std::vector<v1::Trial> trials = {TrialWithAccuracy(1, kNaN), TrialWithAccuracy(2, 0.8),
                                   TrialWithAccuracy(3, kInf), missing,
                                   TrialWithAccuracy(4, 0.9),  TrialWithAccuracy(6, -kInf)};
  SortTrialsBestFirst(trials, "val_accuracy");
  EXPECT_THAT(Ids(trials), ElementsAre(4, 2, 1, 3, 5, 6));
}

TEST(SortTrialsBestFirstTest, KeepsOrderOfEqualValues) {
  std::vector<v1::Trial> trials = {TrialWithAccuracy(7, 0.5), TrialWithAccuracy(3, 0.5),
                                   TrialWithAccuracy(9, 0.5)};
  SortTrialsBestFirst(trials, "val_accuracy");
  EXPECT_THAT(Ids(trials), ElementsAre(7, 3, 9));
}

TEST(TruncateForCellTest, KeepsShortText) { EXPECT_EQ(TruncateForCell("short", 10), "short"); }

TEST(TruncateForCellTest, CutsLongTextWithEllipsis) {
  EXPECT_EQ(TruncateForCell("abcdefghij", 6), "abc...");
}

TEST(TruncateForCellTest, FlattensLineBreaks) {
  EXPECT_EQ(TruncateForCell("line one\nline\ttwo", 40), "line one line two");
}

TEST(TruncateForCellTest, CutsAtCodePointBoundary) {
  // Five two-byte code points cut to four: one kept, then "...".
  EXPECT_EQ(TruncateForCell("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 4), "\xC3\xA9...");
}

TEST(FormatUnixMillisTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatUnixMillis(1714564800123), "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(FormatUnixMillis(0), "-");
}

TEST(FormatDurationTest, UsesLargestUnits) {
  EXPECT_EQ(FormatDuration(45.4), "45s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(7385), "2h03m05s");
  EXPECT_EQ(FormatDuration(kNaN), "-");
  EXPECT_EQ(FormatDuration(-1), "-");
}

// --- Exit codes ---

TEST(ExitCodeForStatusTest, MapsCodesToDocumentedExitCodes) {
  struct Case {
    absl::Status status;
    int expected;
  };
  const Case cases[] = {
      {absl::OkStatus(), 0},
      {absl::InvalidArgumentError("bad grid"), 2},
      {absl::NotFoundError("no sweep"), 3},
      {absl::UnavailableError("down"), 4},
      {absl::DeadlineExceededError("slow"), 4},
      {absl::FailedPreconditionError("stale"), 1},
      {absl::InternalError("bug"), 1},
      {absl::UnknownError("?"), 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.status.ToString());
    EXPECT_EQ(static_cast<int>(ExitCodeForStatus(c.status)), c.expected);
  }
}

// --- Views ---

TEST(RenderTrialTableTest, HasColumnForEveryParameterName) {
  v1::Trial first = TrialWithAccuracy(1, 0.9);
  AddParam(first, "batch_size", int64_t{64});
  v1::Trial second = TrialWithAccuracy(2, 0.8);
  AddParam(second, "learning_rate", 1e-05);
  std::vector<std::string> lines = Lines(RenderTrialTable({first, second}, "val_accuracy"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr("batch_size"));
  EXPECT_THAT(lines[0], HasSubstr("learning_rate"));
  EXPECT_THAT(lines[0], HasSubstr("val_accuracy"));
  EXPECT_THAT(lines[0], HasSubstr("test_accuracy"));
  EXPECT_THAT(lines[2], HasSubstr("1e-05"));
}

TEST(RenderTrialTableTest, AddsSortMetricColumn) {
  v1::Trial trial = TrialWithAccuracy(1, 0.9);
  AddMetric(trial, "train_loss", 0.25);
  std::vector<std::string> lines = Lines(RenderTrialTable({trial}, "train_loss"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("train_loss"));
  EXPECT_THAT(lines[1], HasSubstr("0.25"));
}

TEST(RenderTrialTableTest, ShowsNonFiniteAndTruncatesFailure) {
  v1::Trial trial = TrialWithAccuracy(1, kNaN);
  trial.set_state(v1::TRIAL_STATE_FAILED);
  trial.set_failure_reason(std::string(100, 'x') + "\nsecond line");
  std::vector<std::string> lines = Lines(RenderTrialTable({trial}, "val_accuracy"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[1], HasSubstr("nan"));
  EXPECT_THAT(lines[1], HasSubstr(std::string(37, 'x') + "..."));
  EXPECT_THAT(lines[1], Not(HasSubstr("second line")));
}

TEST(TrialToJsonTest, NonFiniteMetricsAreNull) {
  v1::Trial trial = TrialWithAccuracy(3, kNaN);
  AddMetric(trial, "test_accuracy", kInf);
  AddMetric(trial, "train_loss", 0.5);
  nlohmann::json json = nlohmann::json::parse(JsonText(TrialToJson(trial), 2));
  EXPECT_TRUE(json["metrics"]["val_accuracy"].is_null());
  EXPECT_TRUE(json["metrics"]["test_accuracy"].is_null());
  EXPECT_EQ(json["metrics"]["train_loss"], 0.5);
  EXPECT_EQ(json["state"], "completed");
  EXPECT_TRUE(json["worker_id"].is_null());
}

TEST(SweepToJsonTest, IncludesStoppingRuleAndLimit) {
  v1::Sweep sweep;
  sweep.mutable_stopping_rule()->mutable_median()->set_grace_epochs(2);
  sweep.mutable_stopping_rule()->mutable_median()->set_min_trials(3);
  sweep.set_max_concurrent_trials(4);
  const nlohmann::json json = SweepToJson(sweep);
  EXPECT_EQ(json["stopping_rule"]["rule"], "median");
  EXPECT_EQ(json["stopping_rule"]["grace_epochs"], 2);
  EXPECT_EQ(json["stopping_rule"]["min_trials"], 3);
  EXPECT_EQ(json["max_concurrent_trials"], 4);
  EXPECT_TRUE(SweepToJson(v1::Sweep())["stopping_rule"].is_null());
}

TEST(SweepToJsonTest, EmbedsGridAndKeepsCountAsString) {
  v1::Sweep sweep;
  sweep.set_id(4);
  sweep.set_grid_json(R"({"batch_size":[32,64]})");
  sweep.set_combination_count("340282366920938463463374607431768211456");
  sweep.set_seed(std::numeric_limits<uint64_t>::max());
  sweep.set_state(v1::SWEEP_STATE_RUNNING);
  sweep.mutable_counts()->set_pending(2);
  nlohmann::json json = SweepToJson(sweep);
  EXPECT_EQ(json["grid"]["batch_size"], nlohmann::json::array({32, 64}));
  EXPECT_EQ(json["combination_count"], "340282366920938463463374607431768211456");
  EXPECT_EQ(json["seed"], std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(json["state"], "running");
  EXPECT_EQ(json["counts"]["pending"], 2);
  EXPECT_TRUE(json["parent_sweep_id"].is_null());
}

TEST(RenderSweepListTest, ShowsCountsByState) {
  v1::Sweep sweep;
  sweep.set_id(12);
  sweep.set_name("lr-search");
  sweep.set_state(v1::SWEEP_STATE_RUNNING);
  sweep.set_trial_count(6);
  sweep.mutable_counts()->set_pending(3);
  sweep.mutable_counts()->set_completed(2);
  sweep.mutable_counts()->set_failed(1);
  std::vector<std::string> lines = Lines(RenderSweepList({sweep}));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "id  name       state    trials  pending  running  completed  failed  cancelled  "
            "stopped  created");
  EXPECT_EQ(lines[1],
            "12  lr-search  running  6       3        0        2          1       0          0"
            "        -");
}

TEST(RenderSweepDetailTest, ShowsStoppingRuleAndLimit) {
  v1::Sweep sweep;
  sweep.set_id(4);
  sweep.mutable_stopping_rule()->mutable_asha()->set_min_epochs(1);
  sweep.mutable_stopping_rule()->mutable_asha()->set_reduction_factor(3);
  sweep.set_max_concurrent_trials(8);
  const std::string text = RenderSweepDetail(sweep);
  EXPECT_THAT(text, HasSubstr("stopping      asha (min epochs 1, reduction factor 3)\n"));
  EXPECT_THAT(text, HasSubstr("max running   8\n"));
}

TEST(RenderSweepDetailTest, ShowsNoneWithoutRule) {
  const std::string text = RenderSweepDetail(v1::Sweep());
  EXPECT_THAT(text, HasSubstr("stopping      none\n"));
  EXPECT_THAT(text, HasSubstr("max running   -\n"));
}

TEST(DescribeStoppingRuleTest, MedianNamesItsSettings) {
  v1::StoppingRule rule;
  rule.mutable_median()->set_grace_epochs(2);
  rule.mutable_median()->set_min_trials(3);
  EXPECT_EQ(DescribeStoppingRule(rule), "median (grace epochs 2, min trials 3)");
}

TEST(RenderMetricHistoryTest, OneRowPerAttemptAndEpoch) {
  google::protobuf::RepeatedPtrField<v1::StoredMetric> history;
  *history.Add() = Row(1, 1, 100, "train_loss", 0.9);
  *history.Add() = Row(1, 1, 200, "train_loss", 0.7);
  *history.Add() = Row(1, 1, 200, "val_accuracy", 0.8);
  *history.Add() = Row(2, 1, 150, "train_loss", 0.6);
  std::vector<std::string> lines = Lines(RenderMetricHistory(history));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "attempt  epoch  step  train_loss  val_accuracy");
  EXPECT_EQ(lines[1], "1        1      200   0.7         0.8");
  EXPECT_EQ(lines[2], "2        1      150   0.6         -");
}

TEST(RenderWorkersTest, ShowsHeartbeatAgeInSeconds) {
  v1::Worker worker;
  worker.set_id(1);
  worker.set_host("node-a");
  worker.set_device("cuda:0");
  worker.set_current_trial_id(17);
  worker.set_last_seen_unix_ms(10'000);
  std::vector<std::string> lines = Lines(RenderWorkers({worker}, 12'500));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "1   node-a  cuda:0  17             2.5");
  EXPECT_DOUBLE_EQ(WorkerToJson(worker, 12'500)["last_heartbeat_age_seconds"].get<double>(), 2.5);
}

// --- Export ---

TEST(ExportTrialsCsvTest, WritesParamsMetricsAndEscapedFailure) {
  v1::Trial trial = TrialWithAccuracy(8, 0.875);
  trial.set_ordinal(2);
  trial.set_attempt(1);
  trial.set_epoch(5);
  AddParam(trial, "learning_rate", 0.001);
  AddMetric(trial, "test_accuracy", kNaN);
  trial.set_failure_reason("loss is nan, stopping");
  EXPECT_EQ(ExportTrialsCsv({trial}),
            "trial_id,ordinal,state,attempt,epoch,learning_rate,test_accuracy,val_accuracy,"
            "failure_reason\n"
            "8,2,completed,1,5,0.001,nan,0.875,\"loss is nan, stopping\"\n");
}

TEST(ExportTrialsCsvTest, LeavesMissingValuesEmpty) {
  v1::Trial first = TrialWithAccuracy(1, 0.5);
  AddParam(first, "batch_size", int64_t{32});
  v1::Trial second;
  second.set_id(2);
  std::vector<std::string> lines = Lines(ExportTrialsCsv({first, second}));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "2,0,unspecified,0,0,,,");
}

TEST(ExportTrialsJsonTest, IsValidJsonWithNaN) {
  std::string text = JsonText(ExportTrialsJson({TrialWithAccuracy(1, kNaN)}), 2);
  nlohmann::json json = nlohmann::json::parse(text);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_TRUE(json[0]["metrics"]["val_accuracy"].is_null());
}

TEST(ExportMetricRowsTest, WritesOneRecordPerRow) {
  TrialHistory history;
  history.trial_id = 9;
  *history.rows.Add() = Row(1, 2, 300, "val_accuracy", 0.75);
  *history.rows.Add() = Row(2, 1, 10, "train_loss", kInf);
  EXPECT_EQ(ExportMetricRowsCsv({history}),
            "trial_id,attempt,epoch,step,name,value\n"
            "9,1,2,300,val_accuracy,0.75\n"
            "9,2,1,10,train_loss,inf\n");
  nlohmann::json json = ExportMetricRowsJson({history});
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["trial_id"], 9);
  EXPECT_EQ(json[0]["step"], 300);
  EXPECT_TRUE(json[1]["value"].is_null());
}

// --- Dry run and submit summary ---

constexpr char kGrid[] =
    R"({"batch_size": [32, 64, 128], "learning_rate": [1e-05, 0.001], "keep_prob": [0.5]})";

TEST(PlanDryRunTest, MatchesSampleCombinations) {
  absl::StatusOr<DryRun> dry_run = PlanDryRun(kGrid, 4, 11);
  ASSERT_TRUE(dry_run.ok()) << dry_run.status();
  absl::StatusOr<Grid> grid = Grid::Parse(kGrid);
  ASSERT_TRUE(grid.ok()) << grid.status();
  absl::StatusOr<std::vector<Assignment>> expected = SampleCombinations(*grid, 4, 11);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(dry_run->combination_count, "6");
  EXPECT_EQ(dry_run->sample, *expected);
}

TEST(PlanDryRunTest, RejectsInvalidGrid) {
  absl::StatusOr<DryRun> dry_run = PlanDryRun(R"({"batch_size": []})", 4, 1);
  ASSERT_FALSE(dry_run.ok());
  EXPECT_EQ(dry_run.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PlanDryRunTest, RejectsNonPositiveGridSize) {
  absl::StatusOr<DryRun> dry_run = PlanDryRun(kGrid, 0, 1);
  ASSERT_FALSE(dry_run.ok());
  EXPECT_EQ(dry_run.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RenderDryRunTest, PrintsOneLinePerTrialWithExactValues) {
  DryRun dry_run;
  dry_run.combination_count = "6";
  dry_run.grid_size = 2;
  dry_run.seed = 3;
  dry_run.sample = {{{"batch_size", int64_t{32}}, {"learning_rate", 1e-05}},
                    {{"batch_size", int64_t{64}}, {"learning_rate", 0.001}}};
  EXPECT_EQ(RenderDryRun(dry_run),
            "combinations: 6\n"
            "seed: 3\n"
            "trial 0: batch_size=32 learning_rate=1e-05\n"
            "trial 1: batch_size=64 learning_rate=0.001\n");
}

TEST(DryRunToJsonTest, ListsTrialsWithParams) {
  DryRun dry_run;
  dry_run.combination_count = "6";
  dry_run.grid_size = 1;
  dry_run.seed = 3;
  dry_run.sample = {{{"keep_prob", 0.5}, {"optimizer", std::string("adam")}}};
  nlohmann::json json = DryRunToJson(dry_run);
  EXPECT_EQ(json["combination_count"], "6");
  EXPECT_EQ(json["trial_count"], 1);
  EXPECT_EQ(json["trials"][0]["ordinal"], 0);
  EXPECT_EQ(json["trials"][0]["params"]["keep_prob"], 0.5);
  EXPECT_EQ(json["trials"][0]["params"]["optimizer"], "adam");
}

TEST(RenderSubmitSummaryTest, SaysWhenGridSizeExceedsCount) {
  EXPECT_EQ(RenderSubmitSummary("6", 6, 10, 42, /*dry_run=*/false),
            "6 combinations, 6 trials stored, seed 42\n"
            "grid size 10 exceeds the 6 combinations, so every combination is taken once\n");
}

TEST(RenderSubmitSummaryTest, OneLineWhenGridSizeFits) {
  EXPECT_EQ(RenderSubmitSummary("6", 4, 4, 42, /*dry_run=*/true),
            "6 combinations, 4 trials sampled (dry run, nothing stored), seed 42\n");
}

// --- Watch ---

TEST(RenderProgressBarTest, FillsFractionOfWidth) {
  EXPECT_EQ(RenderProgressBar(0, 4), "[----]");
  EXPECT_EQ(RenderProgressBar(0.5, 4), "[##--]");
  EXPECT_EQ(RenderProgressBar(1, 4), "[####]");
  EXPECT_EQ(RenderProgressBar(3, 4), "[####]");
  EXPECT_EQ(RenderProgressBar(kNaN, 4), "[----]");
}

TEST(EstimateSecondsLeftTest, UsesNumEpochsParam) {
  v1::Trial trial;
  AddParam(trial, "num_epochs", int64_t{10});
  trial.set_epoch(4);
  AddMetric(trial, "epoch_seconds", 30);
  EXPECT_EQ(PlannedEpochs(trial), 10);
  EXPECT_EQ(EstimateSecondsLeft(trial), 180);
}

TEST(EstimateSecondsLeftTest, DefaultsToFiveEpochs) {
  v1::Trial trial;
  trial.set_epoch(2);
  AddMetric(trial, "epoch_seconds", 20);
  EXPECT_EQ(PlannedEpochs(trial), 5);
  EXPECT_EQ(EstimateSecondsLeft(trial), 60);
}

TEST(EstimateSecondsLeftTest, UnknownWithoutFiniteEpochSeconds) {
  v1::Trial trial;
  EXPECT_FALSE(EstimateSecondsLeft(trial).has_value());
  AddMetric(trial, "epoch_seconds", kNaN);
  EXPECT_FALSE(EstimateSecondsLeft(trial).has_value());
}

v1::WatchSweepEvent EventWithTwoRunningTrials() {
  v1::WatchSweepEvent event;
  event.mutable_sweep()->set_id(3);
  event.mutable_sweep()->set_state(v1::SWEEP_STATE_RUNNING);
  event.mutable_sweep()->mutable_counts()->set_running(2);
  for (int64_t id : {10, 11}) {
    v1::Trial* trial = event.add_running();
    trial->set_id(id);
    trial->set_epoch(1);
    AddMetric(*trial, "val_accuracy", 0.8125);
    AddMetric(*trial, "images_per_second", 1500.5);
    AddMetric(*trial, "epoch_seconds", 40);
  }
  *event.mutable_best() = TrialWithAccuracy(7, 0.9);
  return event;
}

TEST(RenderWatchBlockTest, HasHeaderRunningTrialsAndBest) {
  std::vector<std::string> lines = RenderWatchBlock(EventWithTwoRunningTrials(), 0);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[0], HasSubstr("sweep 3 running: pending 0, running 2"));
  EXPECT_EQ(lines[1],
            "trial 10 [####----------------] epoch 1/5 step - val_accuracy 0.8125 "
            "images_per_second 1500.5 ETA 2m40s");
  EXPECT_EQ(lines[3], "best: trial 7 val_accuracy 0.9");
}

TEST(RenderWatchBlockTest, CutsLinesToTerminalWidth) {
  for (const std::string& line : RenderWatchBlock(EventWithTwoRunningTrials(), 30)) {
    EXPECT_LE(line.size(), 29u) << line;
  }
}

TEST(RenderWatchLineTest, OneLineWithBestAndRunningTrials) {
  v1::WatchSweepEvent event = EventWithTwoRunningTrials();
  event.clear_best();
  EXPECT_EQ(RenderWatchLine(event),
            "sweep 3 running: pending 0, running 2, completed 0, failed 0, cancelled 0, "
            "stopped 0; best: none yet; trial 10 at epoch 1/5; trial 11 at epoch 1/5");
}

TEST(WatchEventToJsonTest, BestIsNullWhenMissing) {
  v1::WatchSweepEvent event = EventWithTwoRunningTrials();
  event.clear_best();
  nlohmann::json json = WatchEventToJson(event);
  EXPECT_TRUE(json["best"].is_null());
  EXPECT_EQ(json["running"].size(), 2u);
}

TEST(ClearPreviousBlockTest, MovesUpAndClears) {
  EXPECT_EQ(ClearPreviousBlock(3), "\x1b[3F\x1b[J");
  EXPECT_EQ(ClearPreviousBlock(0), "");
}

// --- The command line, run in-process without a coordinator ---

struct CliRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

CliRun RunSweep(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), "sweep");
  std::vector<const char*> argv;
  for (const auto& argument : arguments) argv.push_back(argument.c_str());
  std::ostringstream out;
  std::ostringstream err;
  CliOutput output{out, err};
  CliRun run;
  run.exit_code = RunCli(static_cast<int>(argv.size()), argv.data(), output);
  run.out = out.str();
  run.err = err.str();
  return run;
}

std::string ClosedAddress() {
  return absl::StrCat("127.0.0.1:", sweep::testing::ClosedLoopbackPort());
}

TEST(RunCliTest, MissingSubcommandExitsTwo) {
  CliRun run = RunSweep({});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("sweep: "));
}

TEST(RunCliTest, HelpExitsZero) {
  CliRun run = RunSweep({"submit", "--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("--grid-size"));
}

TEST(RunCliTest, NonIntegerSweepIdExitsTwo) {
  CliRun run = RunSweep({"trials", "abc"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("abc is not an integer"));
}

TEST(RunCliTest, NegativeSeedExitsTwo) {
  CliRun run = RunSweep({"submit", "grid.json", "--grid-size", "2", "--seed", "-1"});
  EXPECT_EQ(run.exit_code, 2);
}

TEST(RunCliTest, DryRunPrintsSampleWithoutCoordinator) {
  std::string path = WriteTempFile("dry_run_grid.json", kGrid);
  CliRun run = RunSweep({"--coordinator", ClosedAddress(), "submit", path, "--grid-size", "4",
                         "--seed", "11", "--dry-run"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  absl::StatusOr<DryRun> expected = PlanDryRun(kGrid, 4, 11);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(run.out, RenderDryRun(*expected));
  EXPECT_THAT(run.err, HasSubstr("6 combinations, 4 trials sampled"));
}

TEST(RunCliTest, DryRunJsonParses) {
  std::string path = WriteTempFile("dry_run_json_grid.json", kGrid);
  CliRun run =
      RunSweep({"submit", path, "--grid-size", "10", "--seed", "5", "--dry-run", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["trial_count"], 6);
  EXPECT_EQ(json["seed"], 5);
  EXPECT_THAT(run.err, HasSubstr("every combination is taken once"));
}

TEST(RunCliTest, AcceptsOldScriptFlags) {
  std::string path = WriteTempFile("old_flags_grid.json", kGrid);
  CliRun run = RunSweep({"submit", "--hparams_path", path, "--grid_size", "2", "--logdir",
                         "/tmp/logs", "--seed", "1", "--dry-run"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("coordinator's --logdir"));
  EXPECT_EQ(Lines(run.out).size(), 4u);
}

TEST(RunCliTest, MissingSeedIsDrawnAndPrinted) {
  std::string path = WriteTempFile("random_seed_grid.json", kGrid);
  CliRun run = RunSweep({"submit", path, "--grid-size", "2", "--dry-run"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("was drawn at random; pass --seed"));
}

TEST(RunCliTest, InvalidGridFileExitsTwo) {
  std::string path = WriteTempFile("invalid_grid.json", R"({"batch_size": [0]})");
  CliRun run = RunSweep(
      {"--coordinator", ClosedAddress(), "submit", path, "--grid-size", "2", "--seed", "1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("batch_size"));
}

TEST(RunCliTest, MissingGridFileExitsTwo) {
  CliRun run = RunSweep({"submit", "/nonexistent/grid.json", "--grid-size", "2", "--seed", "1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("cannot be read"));
}

TEST(RunCliTest, UnreachableCoordinatorExitsFour) {
  std::string address = ClosedAddress();
  CliRun run = RunSweep({"--coordinator", address, "status"});
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_THAT(run.err, HasSubstr(absl::StrCat("sweep: cannot reach coordinator at ", address)));
  EXPECT_THAT(run.err, HasSubstr("start sweep-coordinator or pass --coordinator"));
}

TEST(RunCliTest, GlobalOptionsFollowSubcommand) {
  std::string address = ClosedAddress();
  CliRun run = RunSweep({"workers", "--json", "--coordinator", address, "--timeout", "2"});
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_THAT(run.err, HasSubstr(address));
}

TEST(RunCliTest, CoordinatorDefaultsToEnvironment) {
  std::string address = ClosedAddress();
  setenv("SWEEP_COORDINATOR", address.c_str(), 1);
  CliRun run = RunSweep({"status"});
  unsetenv("SWEEP_COORDINATOR");
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_THAT(run.err, HasSubstr(address));
}

TEST(RunCliTest, InvalidStateExitsTwo) {
  CliRun run = RunSweep({"--coordinator", ClosedAddress(), "trials", "1", "--state", "done"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("trial state \"done\" is not valid"));
}

}  // namespace
}  // namespace sweep::client
