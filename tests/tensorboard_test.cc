#include "server/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/coordinator.h"
#include "server/store.h"
#include "server/tensorboard_events.pb.h"

namespace sweep::server {
namespace {

namespace fs = std::filesystem;

TEST(Crc32cTest, KnownVectors) {
  std::string ascending;
  std::string descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  struct Case {
    const char* name;
    std::string data;
    uint32_t expected;
  };
  // The 32-byte vectors are those of RFC 3720, appendix B.4.
  const Case cases[] = {
      {"check string", "123456789", 0xE3069283},
      {"empty", "", 0x00000000},
      {"32 zero bytes", std::string(32, '\0'), 0x8A9136AA},
      {"32 0xFF bytes", std::string(32, '\xff'), 0x62A8AB43},
      {"ascending bytes", ascending, 0x46DD794E},
      {"descending bytes", descending, 0x113FDB5C},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Crc32c(c.data), c.expected);
  }
}

TEST(Crc32cTest, MaskRotatesAndAddsDelta) {
  EXPECT_EQ(MaskCrc32c(0), 0xA282EAD8u);
  EXPECT_EQ(MaskCrc32c(0x12345678), 0x4F730F40u);
  EXPECT_EQ(MaskCrc32c(0xE3069283), 0xC78AB0E5u);
}

uint64_t LittleEndianAt(const std::string& bytes, size_t offset, int size) {
  uint64_t value = 0;
  for (int i = 0; i < size; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return value;
}

TEST(FrameRecordTest, LayoutMatchesTfRecord) {
  const std::string record = FrameRecord("abc");

  ASSERT_EQ(record.size(), 8u + 4u + 3u + 4u);
  EXPECT_EQ(LittleEndianAt(record, 0, 8), 3u);
  EXPECT_EQ(LittleEndianAt(record, 8, 4), MaskCrc32c(Crc32c(record.substr(0, 8))));
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(LittleEndianAt(record, 15, 4), MaskCrc32c(Crc32c("abc")));
}

// A fresh directory under the test temporary directory, removed afterwards.
class TensorBoardWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "tensorboard_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    logdir_ = root_ / "logs";
  }

  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<TensorBoardWriter> CreateWriter(
      size_t max_open_files = TensorBoardWriter::kDefaultMaxOpenFiles) {
    absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer =
        TensorBoardWriter::Create(logdir_, max_open_files);
    EXPECT_TRUE(writer.ok()) << writer.status();
    return writer.ok() ? std::move(*writer) : nullptr;
  }

  fs::path SweepDir(int64_t sweep_id) const { return logdir_ / std::to_string(sweep_id); }
  fs::path TrialDir(int64_t sweep_id, int64_t trial_id) const {
    return SweepDir(sweep_id) / std::to_string(trial_id);
  }

  // Returns the event files directly in `dir`, sorted by name.
  static std::vector<fs::path> EventFiles(const fs::path& dir) {
    std::vector<fs::path> files;
    if (!fs::is_directory(dir)) return files;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() &&
          entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  // Returns the events of the only event file in `dir`, with every checksum verified.
  static std::vector<tensorboard::Event> ReadEvents(const fs::path& dir) {
    const std::vector<fs::path> files = EventFiles(dir);
    EXPECT_EQ(files.size(), 1u) << dir;
    if (files.size() != 1) return {};
    absl::StatusOr<std::vector<std::string>> records = ReadEventFile(files.front());
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok()) return {};

    std::vector<tensorboard::Event> events;
    for (const std::string& record : *records) {
      tensorboard::Event& event = events.emplace_back();
      EXPECT_TRUE(event.ParseFromString(record));
    }
    return events;
  }

  // Returns the events after the leading file_version event, checking that it is there.
  static std::vector<tensorboard::Event> ReadSummaryEvents(const fs::path& dir) {
    std::vector<tensorboard::Event> events = ReadEvents(dir);
    EXPECT_FALSE(events.empty());
    if (events.empty()) return events;
    EXPECT_EQ(events.front().file_version(), "brain.Event:2");
    events.erase(events.begin());
    return events;
  }

  // Decodes the HParams plugin content of an event holding one HParams summary value.
  static tensorboard::HParamsPluginData PluginData(const tensorboard::Event& event,
                                                   const std::string& expected_tag) {
    tensorboard::HParamsPluginData data;
    EXPECT_EQ(event.summary().value_size(), 1);
    if (event.summary().value_size() != 1) return data;
    const tensorboard::Summary::Value& value = event.summary().value(0);
    EXPECT_EQ(value.tag(), expected_tag);
    EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "hparams");
    EXPECT_EQ(value.value_case(), tensorboard::Summary::Value::VALUE_NOT_SET);
    EXPECT_TRUE(data.ParseFromString(value.metadata().plugin_data().content()));
    EXPECT_EQ(data.version(), 0);
    return data;
  }

  static v1::MetricRow Row(int64_t seq, int32_t epoch, int64_t step, const std::string& name,
                           double value) {
    v1::MetricRow row;
    row.set_seq(seq);
    row.set_epoch(epoch);
    row.set_step(step);
    row.set_name(name);
    row.set_value(value);
    return row;
  }

  fs::path root_;
  fs::path logdir_;
};

TEST_F(TensorBoardWriterTest, CreateMakesMissingDirectories) {
  logdir_ = root_ / "a" / "b" / "logs";

  ASSERT_NE(CreateWriter(), nullptr);

  EXPECT_TRUE(fs::is_directory(logdir_));
}

TEST_F(TensorBoardWriterTest, CreateRejectsRegularFile) {
  std::ofstream(root_ / "file") << "x";

  absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer =
      TensorBoardWriter::Create(root_ / "file");

  EXPECT_FALSE(writer.ok());
}

TEST_F(TensorBoardWriterTest, FileNameHasSecondsAndHostname) {
  const auto before = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);

  ASSERT_TRUE(writer->WriteTrialStart(3, 7, {{"batch_size", int64_t{32}}}).ok());

  const auto after = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  char hostname[256] = {};
  ASSERT_EQ(::gethostname(hostname, sizeof(hostname) - 1), 0);
  const std::vector<fs::path> files = EventFiles(TrialDir(3, 7));
  ASSERT_EQ(files.size(), 1u);
  const std::string name = files.front().filename().string();
  const std::string prefix = "events.out.tfevents.";
  ASSERT_EQ(name.rfind(prefix, 0), 0u) << name;
  const size_t dot = name.find('.', prefix.size());
  ASSERT_NE(dot, std::string::npos) << name;
  const int64_t seconds = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  EXPECT_GE(seconds, before);
  EXPECT_LE(seconds, after);
  EXPECT_EQ(name.substr(dot + 1), hostname);
}

TEST_F(TensorBoardWriterTest, FirstRecordIsFileVersion) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);

  ASSERT_TRUE(writer->WriteMetrics(1, 2, {Row(1, 1, 10, "val_accuracy", 0.5)}).ok());

  const std::vector<tensorboard::Event> events = ReadEvents(TrialDir(1, 2));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].what_case(), tensorboard::Event::kFileVersion);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_GT(events[0].wall_time(), 1.6e9);
  EXPECT_EQ(events[1].what_case(), tensorboard::Event::kSummary);
}

TEST_F(TensorBoardWriterTest, ScalarsHaveTagStepAndValue) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  const std::vector<v1::MetricRow> rows = {
      Row(1, 1, 50, "step_train_loss", 2.25), Row(2, 1, 100, "step_train_loss", 1.0 / 3.0),
      Row(3, 1, 100, "train_loss", 1.5),      Row(4, 1, 100, "val_accuracy", 0.8125),
      Row(5, 2, 200, "val_accuracy", 0.1),
  };

  ASSERT_TRUE(writer->WriteMetrics(4, 9, rows).ok());

  const std::vector<tensorboard::Event> events = ReadSummaryEvents(TrialDir(4, 9));
  struct Expected {
    const char* tag;
    int64_t step;
    double value;
  };
  const Expected expected[] = {
      {"step_train_loss", 50, 2.25}, {"step_train_loss", 100, 1.0 / 3.0},
      {"train_loss", 1, 1.5},        {"val_accuracy", 1, 0.8125},
      {"val_accuracy", 2, 0.1},
  };
  ASSERT_EQ(events.size(), std::size(expected));
  for (size_t i = 0; i < events.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(events[i].summary().value_size(), 1);
    const tensorboard::Summary::Value& value = events[i].summary().value(0);
    EXPECT_EQ(value.tag(), expected[i].tag);
    EXPECT_EQ(events[i].step(), expected[i].step);
    EXPECT_EQ(value.value_case(), tensorboard::Summary::Value::kSimpleValue);
    EXPECT_EQ(value.simple_value(), static_cast<float>(expected[i].value));
    EXPECT_FALSE(value.has_metadata());
  }
}

TEST_F(TensorBoardWriterTest, SweepExperimentListsDomainsAndMetrics) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  const std::vector<std::pair<std::string, std::vector<Value>>> grid = {
      {"batch_size", {int64_t{32}, int64_t{64}}},
      {"learning_rate", {0.1, 0.01}},
      {"optimizer", {std::string("sgd"), std::string("adam")}},
      {"augment", {true, false}},
      {"mixed", {int64_t{1}, std::string("two")}},
  };

  ASSERT_TRUE(writer->WriteSweep(5, grid, {"val_accuracy", "test_accuracy", "train_loss"}).ok());

  const std::vector<tensorboard::Event> events = ReadSummaryEvents(SweepDir(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].step(), 0);
  const tensorboard::HParamsPluginData data = PluginData(events[0], "_hparams_/experiment");
  ASSERT_TRUE(data.has_experiment());
  const tensorboard::Experiment& experiment = data.experiment();
  EXPECT_GT(experiment.time_created_secs(), 1.6e9);
  ASSERT_EQ(experiment.hparam_infos_size(), 5);

  const tensorboard::HParamInfo& batch_size = experiment.hparam_infos(0);
  EXPECT_EQ(batch_size.name(), "batch_size");
  EXPECT_EQ(batch_size.type(), tensorboard::DATA_TYPE_FLOAT64);
  ASSERT_EQ(batch_size.domain_discrete().values_size(), 2);
  EXPECT_EQ(batch_size.domain_discrete().values(0).number_value(), 32.0);
  EXPECT_EQ(batch_size.domain_discrete().values(1).number_value(), 64.0);

  const tensorboard::HParamInfo& learning_rate = experiment.hparam_infos(1);
  EXPECT_EQ(learning_rate.name(), "learning_rate");
  EXPECT_EQ(learning_rate.type(), tensorboard::DATA_TYPE_FLOAT64);
  ASSERT_EQ(learning_rate.domain_discrete().values_size(), 2);
  EXPECT_EQ(learning_rate.domain_discrete().values(0).number_value(), 0.1);
  EXPECT_EQ(learning_rate.domain_discrete().values(1).number_value(), 0.01);

  const tensorboard::HParamInfo& optimizer = experiment.hparam_infos(2);
  EXPECT_EQ(optimizer.name(), "optimizer");
  EXPECT_EQ(optimizer.type(), tensorboard::DATA_TYPE_STRING);
  ASSERT_EQ(optimizer.domain_discrete().values_size(), 2);
  EXPECT_EQ(optimizer.domain_discrete().values(0).string_value(), "sgd");
  EXPECT_EQ(optimizer.domain_discrete().values(1).string_value(), "adam");

  const tensorboard::HParamInfo& augment = experiment.hparam_infos(3);
  EXPECT_EQ(augment.name(), "augment");
  EXPECT_EQ(augment.type(), tensorboard::DATA_TYPE_BOOL);
  ASSERT_EQ(augment.domain_discrete().values_size(), 2);
  EXPECT_TRUE(augment.domain_discrete().values(0).bool_value());
  EXPECT_EQ(augment.domain_discrete().values(1).kind_case(), google::protobuf::Value::kBoolValue);
  EXPECT_FALSE(augment.domain_discrete().values(1).bool_value());

  const tensorboard::HParamInfo& mixed = experiment.hparam_infos(4);
  EXPECT_EQ(mixed.type(), tensorboard::DATA_TYPE_STRING);
  ASSERT_EQ(mixed.domain_discrete().values_size(), 2);
  EXPECT_EQ(mixed.domain_discrete().values(0).string_value(), "1");
  EXPECT_EQ(mixed.domain_discrete().values(1).string_value(), "two");

  ASSERT_EQ(experiment.metric_infos_size(), 3);
  const std::pair<const char*, tensorboard::DatasetType> metrics[] = {
      {"val_accuracy", tensorboard::DATASET_VALIDATION},
      {"test_accuracy", tensorboard::DATASET_UNKNOWN},
      {"train_loss", tensorboard::DATASET_TRAINING},
  };
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(metrics[i].first);
    EXPECT_EQ(experiment.metric_infos(i).name().tag(), metrics[i].first);
    EXPECT_EQ(experiment.metric_infos(i).name().group(), "");
    EXPECT_EQ(experiment.metric_infos(i).dataset_type(), metrics[i].second);
  }
}

TEST_F(TensorBoardWriterTest, TrialStartHoldsParameterValues) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  const Assignment params = {
      {"augment", false},
      {"batch_size", int64_t{64}},
      {"learning_rate", 0.001},
      {"optimizer", std::string("adam")},
  };

  ASSERT_TRUE(writer->WriteTrialStart(2, 11, params).ok());

  const std::vector<tensorboard::Event> events = ReadSummaryEvents(TrialDir(2, 11));
  ASSERT_EQ(events.size(), 1u);
  const tensorboard::HParamsPluginData data = PluginData(events[0], "_hparams_/session_start_info");
  ASSERT_TRUE(data.has_session_start_info());
  const tensorboard::SessionStartInfo& start = data.session_start_info();
  EXPECT_GT(start.start_time_secs(), 1.6e9);
  EXPECT_EQ(start.group_name(), "");
  ASSERT_EQ(start.hparams_size(), 4);
  EXPECT_EQ(start.hparams().at("augment").kind_case(), google::protobuf::Value::kBoolValue);
  EXPECT_FALSE(start.hparams().at("augment").bool_value());
  EXPECT_EQ(start.hparams().at("batch_size").number_value(), 64.0);
  EXPECT_EQ(start.hparams().at("learning_rate").number_value(), 0.001);
  EXPECT_EQ(start.hparams().at("optimizer").string_value(), "adam");
}

TEST_F(TensorBoardWriterTest, TrialStartWritesOnce) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);

  ASSERT_TRUE(writer->WriteTrialStart(2, 11, {{"batch_size", int64_t{64}}}).ok());
  ASSERT_TRUE(writer->WriteTrialStart(2, 11, {{"batch_size", int64_t{64}}}).ok());

  EXPECT_EQ(ReadSummaryEvents(TrialDir(2, 11)).size(), 1u);
}

TEST_F(TensorBoardWriterTest, TrialEndMapsStates) {
  struct Case {
    v1::TrialState state;
    tensorboard::SessionStatus expected;
  };
  const Case cases[] = {
      {v1::TRIAL_STATE_COMPLETED, tensorboard::STATUS_SUCCESS},
      {v1::TRIAL_STATE_FAILED, tensorboard::STATUS_FAILURE},
      {v1::TRIAL_STATE_CANCELLED, tensorboard::STATUS_UNKNOWN},
      {v1::TRIAL_STATE_STOPPED, tensorboard::STATUS_UNKNOWN},
  };
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  int64_t trial_id = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(v1::TrialState_Name(c.state));

    ASSERT_TRUE(writer->WriteTrialEnd(8, trial_id, c.state, {}).ok());

    const std::vector<tensorboard::Event> events = ReadSummaryEvents(TrialDir(8, trial_id));
    ASSERT_EQ(events.size(), 1u);
    const tensorboard::HParamsPluginData data = PluginData(events[0], "_hparams_/session_end_info");
    ASSERT_TRUE(data.has_session_end_info());
    EXPECT_EQ(data.session_end_info().status(), c.expected);
    EXPECT_GT(data.session_end_info().end_time_secs(), 1.6e9);
    ++trial_id;
  }
}

// A trial that a lease expiry fails gets its session end, like one a worker reports.
TEST_F(TensorBoardWriterTest, ExpiredLeaseWritesFailedEnd) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open((root_ / "sweep.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  Coordinator coordinator(**store, CoordinatorOptions{.lease_ms = 1, .max_attempts = 1},
                          writer.get());
  v1::SubmitSweepRequest submit;
  submit.set_grid_json(R"({"conv1_depth": [8]})");
  submit.set_grid_size(1);
  absl::StatusOr<v1::SubmitSweepResponse> sweep = coordinator.SubmitSweep(submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  absl::StatusOr<int64_t> worker = (*store)->RegisterWorker("host", "cpu", NowUnixMs());
  ASSERT_TRUE(worker.ok());
  absl::StatusOr<v1::AcquireTrialResponse> acquired =
      coordinator.AcquireTrial(*worker, 0, 1, [] { return false; });
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  ASSERT_TRUE(acquired->has_lease());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  absl::StatusOr<ExpiredLeases> expired = coordinator.ExpireLeasesNow();
  ASSERT_TRUE(expired.ok()) << expired.status();
  ASSERT_EQ(expired->failed, 1);
  const std::vector<tensorboard::Event> events =
      ReadSummaryEvents(TrialDir(sweep->sweep().id(), acquired->lease().trial_id()));
  ASSERT_EQ(events.size(), 2u);
  const tensorboard::HParamsPluginData data = PluginData(events[1], "_hparams_/session_end_info");
  EXPECT_EQ(data.session_end_info().status(), tensorboard::STATUS_FAILURE);
}

TEST_F(TensorBoardWriterTest, TrialEndRejectsNonFinalState) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);

  for (const v1::TrialState state :
       {v1::TRIAL_STATE_UNSPECIFIED, v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_RUNNING}) {
    SCOPED_TRACE(v1::TrialState_Name(state));
    EXPECT_EQ(writer->WriteTrialEnd(1, 1, state, {}).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(EventFiles(TrialDir(1, 1)).empty());
}

TEST_F(TensorBoardWriterTest, TrialEndWritesFinalMetricsAtLastEpoch) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->WriteTrialStart(6, 1, {{"batch_size", int64_t{32}}}).ok());
  ASSERT_TRUE(
      writer
          ->WriteMetrics(
              6, 1, {Row(1, 3, 300, "val_accuracy", 0.85), Row(2, 3, 301, "step_train_loss", 0.4)})
          .ok());
  ASSERT_EQ(writer->OpenFileCount(), 1u);

  ASSERT_TRUE(writer
                  ->WriteTrialEnd(6, 1, v1::TRIAL_STATE_COMPLETED,
                                  {{"test_accuracy", 0.8375}, {"best_val_accuracy", 0.85}})
                  .ok());

  EXPECT_EQ(writer->OpenFileCount(), 0u);
  const std::vector<tensorboard::Event> events = ReadSummaryEvents(TrialDir(6, 1));
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(PluginData(events[0], "_hparams_/session_start_info").data_case(),
            tensorboard::HParamsPluginData::kSessionStartInfo);
  ASSERT_EQ(events[3].summary().value_size(), 1);
  EXPECT_EQ(events[3].summary().value(0).tag(), "test_accuracy");
  EXPECT_EQ(events[3].step(), 3);
  EXPECT_EQ(events[3].summary().value(0).simple_value(), 0.8375f);
  ASSERT_EQ(events[4].summary().value_size(), 1);
  EXPECT_EQ(events[4].summary().value(0).tag(), "best_val_accuracy");
  EXPECT_EQ(events[4].step(), 3);
  EXPECT_EQ(events[4].summary().value(0).simple_value(), 0.85f);
  EXPECT_EQ(PluginData(events[5], "_hparams_/session_end_info").session_end_info().status(),
            tensorboard::STATUS_SUCCESS);
}

TEST_F(TensorBoardWriterTest, RejectsNegativeIdsAndEmptyNames) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);

  EXPECT_EQ(writer->WriteSweep(-1, {}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->WriteSweep(1, {{"", {int64_t{1}}}}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->WriteSweep(1, {}, {""}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->WriteTrialStart(1, -2, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->WriteMetrics(1, 1, {Row(1, 1, 1, "loss", 1), Row(2, 1, 1, "", 1)}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(writer->WriteTrialEnd(1, 1, v1::TRIAL_STATE_COMPLETED, {{"", 1.0}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(SweepDir(1)));
}

TEST_F(TensorBoardWriterTest, EveryFlippedByteIsDetected) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->WriteMetrics(1, 1, {Row(1, 1, 1, "val_accuracy", 0.5)}).ok());
  writer.reset();
  const std::vector<fs::path> files = EventFiles(TrialDir(1, 1));
  ASSERT_EQ(files.size(), 1u);
  std::string original;
  {
    std::ifstream in(files.front(), std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_TRUE(ReadEventFile(files.front()).ok());
  const fs::path corrupt_path = root_ / "corrupt";

  for (size_t i = 0; i < original.size(); ++i) {
    SCOPED_TRACE(i);
    std::string corrupt = original;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x01);
    std::ofstream(corrupt_path, std::ios::binary | std::ios::trunc) << corrupt;

    const absl::StatusOr<std::vector<std::string>> records = ReadEventFile(corrupt_path);

    EXPECT_EQ(records.status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST_F(TensorBoardWriterTest, TruncatedFileIsDetected) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter();
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->WriteMetrics(1, 1, {Row(1, 1, 1, "val_accuracy", 0.5)}).ok());
  writer.reset();
  const std::vector<fs::path> files = EventFiles(TrialDir(1, 1));
  ASSERT_EQ(files.size(), 1u);
  const uintmax_t size = fs::file_size(files.front());

  for (const uintmax_t cut : {uintmax_t{1}, uintmax_t{4}, uintmax_t{13}}) {
    SCOPED_TRACE(cut);
    fs::resize_file(files.front(), size - cut);
    EXPECT_EQ(ReadEventFile(files.front()).status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST_F(TensorBoardWriterTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadEventFile(root_ / "missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TensorBoardWriterTest, ClosedFilesReopenForAppending) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter(/*max_open_files=*/2);
  ASSERT_NE(writer, nullptr);

  for (int epoch = 1; epoch <= 3; ++epoch) {
    for (int64_t trial_id = 1; trial_id <= 3; ++trial_id) {
      ASSERT_TRUE(
          writer->WriteMetrics(1, trial_id, {Row(epoch, epoch, epoch, "val_loss", epoch)}).ok());
      EXPECT_LE(writer->OpenFileCount(), 2u);
    }
  }

  for (int64_t trial_id = 1; trial_id <= 3; ++trial_id) {
    SCOPED_TRACE(trial_id);
    const std::vector<tensorboard::Event> events = ReadSummaryEvents(TrialDir(1, trial_id));
    ASSERT_EQ(events.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(events[i].step(), i + 1);
      EXPECT_EQ(events[i].what_case(), tensorboard::Event::kSummary);
    }
  }
}

TEST_F(TensorBoardWriterTest, ConcurrentWritesStayWhole) {
  std::unique_ptr<TensorBoardWriter> writer = CreateWriter(/*max_open_files=*/3);
  ASSERT_NE(writer, nullptr);
  constexpr int kThreads = 8;
  constexpr int kBatches = 50;

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&writer, t] {
      for (int batch = 0; batch < kBatches; ++batch) {
        const std::vector<v1::MetricRow> rows = {Row(1, batch, batch, "train_loss", t),
                                                 Row(2, batch, batch, "val_loss", t)};
        EXPECT_TRUE(writer->WriteMetrics(1, t % 4, rows).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int64_t trial_id = 0; trial_id < 4; ++trial_id) {
    SCOPED_TRACE(trial_id);
    const std::vector<tensorboard::Event> events = ReadSummaryEvents(TrialDir(1, trial_id));
    ASSERT_EQ(events.size(), 2u * kBatches * (kThreads / 4));
    for (size_t i = 0; i < events.size(); i += 2) {
      ASSERT_EQ(events[i].summary().value_size(), 1);
      ASSERT_EQ(events[i + 1].summary().value_size(), 1);
      EXPECT_EQ(events[i].summary().value(0).tag(), "train_loss");
      EXPECT_EQ(events[i + 1].summary().value(0).tag(), "val_loss");
      EXPECT_EQ(events[i].summary().value(0).simple_value(),
                events[i + 1].summary().value(0).simple_value());
    }
  }
}

}  // namespace
}  // namespace sweep::server
