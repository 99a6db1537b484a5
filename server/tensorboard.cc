#include "server/tensorboard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <iterator>
#include <system_error>
#include <variant>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "spdlog/spdlog.h"

namespace sweep::server {
namespace {

// CRC32C's generator polynomial 0x1EDC6F41 with its bits reversed, for the LSB-first form.
constexpr uint32_t kCrc32cReflectedPolynomial = 0x82F63B78;
constexpr uint32_t kCrcMaskDelta = 0xA282EAD8;
// Bytes of framing before a record's data: the uint64 length and the length's masked CRC.
constexpr size_t kRecordHeaderSize = 12;
constexpr size_t kRecordFooterSize = 4;

constexpr std::string_view kFileVersion = "brain.Event:2";
constexpr std::string_view kHParamsPluginName = "hparams";
constexpr int kHParamsPluginDataVersion = 0;
constexpr std::string_view kExperimentTag = "_hparams_/experiment";
constexpr std::string_view kSessionStartInfoTag = "_hparams_/session_start_info";
constexpr std::string_view kSessionEndInfoTag = "_hparams_/session_end_info";
constexpr std::string_view kStepMetricPrefix = "step_";

constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t index = 0; index < table.size(); ++index) {
    uint32_t crc = index;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) != 0 ? (crc >> 1) ^ kCrc32cReflectedPolynomial : crc >> 1;
    }
    table[index] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

void AppendLittleEndian(uint64_t value, int bytes, std::string& out) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  }
}

uint64_t ReadLittleEndian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return value;
}

double UnixSeconds() {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(since_epoch).count();
}

std::string ErrnoMessage(int error_number) { return std::generic_category().message(error_number); }

absl::Status ValidateIds(int64_t sweep_id, int64_t trial_id) {
  if (sweep_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep id ", sweep_id, " is negative; pass the id the store assigned"));
  }
  if (trial_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial id ", trial_id, " is negative; pass the id the store assigned"));
  }
  return absl::OkStatus();
}

std::string SerializeEvent(const tensorboard::Event& event) {
  std::string bytes;
  event.SerializeToString(&bytes);
  return bytes;
}

std::string FileVersionEvent() {
  tensorboard::Event event;
  event.set_wall_time(UnixSeconds());
  event.set_file_version(std::string(kFileVersion));
  return SerializeEvent(event);
}

std::string ScalarEvent(std::string_view tag, int64_t step, double value) {
  tensorboard::Event event;
  event.set_wall_time(UnixSeconds());
  event.set_step(step);
  tensorboard::Summary::Value* summary_value = event.mutable_summary()->add_value();
  summary_value->set_tag(std::string(tag));
  summary_value->set_simple_value(static_cast<float>(value));
  return SerializeEvent(event);
}

// An HParams summary is a value with the plugin's metadata and no data of its own, as
// TensorBoard's own hparams summary functions write it.
std::string HParamsEvent(std::string_view tag, const tensorboard::HParamsPluginData& data) {
  tensorboard::Event event;
  event.set_wall_time(UnixSeconds());
  tensorboard::Summary::Value* summary_value = event.mutable_summary()->add_value();
  summary_value->set_tag(std::string(tag));
  tensorboard::SummaryMetadata::PluginData* plugin_data =
      summary_value->mutable_metadata()->mutable_plugin_data();
  plugin_data->set_plugin_name(std::string(kHParamsPluginName));
  data.SerializeToString(plugin_data->mutable_content());
  return SerializeEvent(event);
}

google::protobuf::Value ToProtoValue(const Value& value) {
  google::protobuf::Value proto;
  if (const auto* integer = std::get_if<int64_t>(&value)) {
    // NOTE: integers above 2^53 in magnitude lose precision, because the type is a double.
    proto.set_number_value(static_cast<double>(*integer));
  } else if (const auto* real = std::get_if<double>(&value)) {
    // TensorBoard's HParams plugin sends experiments to the browser through protobuf's Python
    // json_format, which raises on NaN and infinities in a Value, so those travel as text.
    if (std::isfinite(*real)) {
      proto.set_number_value(*real);
    } else {
      proto.set_string_value(FormatDouble(*real));
    }
  } else if (const auto* text = std::get_if<std::string>(&value)) {
    proto.set_string_value(*text);
  } else {
    proto.set_bool_value(std::get<bool>(value));
  }
  return proto;
}

tensorboard::DataType DataTypeOf(const Value& value) {
  if (std::holds_alternative<std::string>(value)) return tensorboard::DATA_TYPE_STRING;
  if (std::holds_alternative<bool>(value)) return tensorboard::DATA_TYPE_BOOL;
  return tensorboard::DATA_TYPE_FLOAT64;
}

tensorboard::HParamInfo HParamInfoOf(const std::string& name, const std::vector<Value>& values) {
  tensorboard::HParamInfo info;
  info.set_name(name);
  if (values.empty()) return info;

  tensorboard::DataType type = DataTypeOf(values.front());
  for (const Value& value : values) {
    if (DataTypeOf(value) != type) type = tensorboard::DATA_TYPE_STRING;
  }
  info.set_type(type);
  google::protobuf::ListValue* domain = info.mutable_domain_discrete();
  for (const Value& value : values) {
    if (type == tensorboard::DATA_TYPE_STRING && !std::holds_alternative<std::string>(value)) {
      domain->add_values()->set_string_value(FormatValue(value));
    } else {
      *domain->add_values() = ToProtoValue(value);
    }
  }
  return info;
}

tensorboard::DatasetType DatasetTypeOf(std::string_view metric_name) {
  if (metric_name.starts_with("val_")) return tensorboard::DATASET_VALIDATION;
  if (metric_name.starts_with("train_") || metric_name.starts_with("step_train_")) {
    return tensorboard::DATASET_TRAINING;
  }
  return tensorboard::DATASET_UNKNOWN;
}

// Writes all of `bytes`, retrying after a signal or a short write.
absl::Status WriteAll(int descriptor, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(descriptor, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "write failed");
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::filesystem::path& path) {
  const int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("event file ", path.string(), ": open failed"));
  }

  std::string contents;
  std::array<char, 1 << 16> buffer;
  while (true) {
    const ssize_t count = ::read(descriptor, buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error_number = errno;
      ::close(descriptor);
      return absl::ErrnoToStatus(error_number,
                                 absl::StrCat("event file ", path.string(), ": read failed"));
    }
    if (count == 0) break;
    contents.append(buffer.data(), static_cast<size_t>(count));
  }
  ::close(descriptor);
  return contents;
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  uint32_t crc = 0xFFFFFFFF;
  for (const char byte : data) {
    crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(byte)) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFF;
}

uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kCrcMaskDelta; }

std::string FrameRecord(std::string_view data) {
  std::string record;
  record.reserve(kRecordHeaderSize + data.size() + kRecordFooterSize);
  AppendLittleEndian(data.size(), 8, record);
  AppendLittleEndian(MaskCrc32c(Crc32c(record)), 4, record);
  record.append(data);
  AppendLittleEndian(MaskCrc32c(Crc32c(data)), 4, record);
  return record;
}

absl::StatusOr<std::vector<std::string>> ReadEventFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok()) return contents.status();

  std::vector<std::string> records;
  std::string_view rest = *contents;
  while (!rest.empty()) {
    const size_t offset = contents->size() - rest.size();
    const auto corrupt = [&](const std::string& problem) {
      return absl::DataLossError(absl::StrCat("event file ", path.string(), ": record ",
                                              records.size(), " at byte ", offset, " ", problem));
    };
    if (rest.size() < kRecordHeaderSize + kRecordFooterSize) {
      return corrupt("is truncated inside its framing");
    }
    const std::string_view length_bytes = rest.substr(0, 8);
    if (ReadLittleEndian(rest.substr(8, 4)) != MaskCrc32c(Crc32c(length_bytes))) {
      return corrupt("has a corrupt length checksum");
    }
    const uint64_t length = ReadLittleEndian(length_bytes);
    if (length > rest.size() - kRecordHeaderSize - kRecordFooterSize) {
      return corrupt(absl::StrCat("is truncated: its length is ", length, " bytes"));
    }
    const std::string_view data = rest.substr(kRecordHeaderSize, length);
    if (ReadLittleEndian(rest.substr(kRecordHeaderSize + length, 4)) != MaskCrc32c(Crc32c(data))) {
      return corrupt("has a corrupt data checksum");
    }
    records.emplace_back(data);
    rest.remove_prefix(kRecordHeaderSize + length + kRecordFooterSize);
  }
  return records;
}

absl::StatusOr<tensorboard::SessionStatus> SessionStatusForTrialState(v1::TrialState state) {
  switch (state) {
    case v1::TRIAL_STATE_COMPLETED:
      return tensorboard::STATUS_SUCCESS;
    case v1::TRIAL_STATE_FAILED:
      return tensorboard::STATUS_FAILURE;
    case v1::TRIAL_STATE_CANCELLED:
    case v1::TRIAL_STATE_STOPPED:
      return tensorboard::STATUS_UNKNOWN;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("trial state ", v1::TrialState_Name(state),
                       " is not final; pass COMPLETED, FAILED, CANCELLED or STOPPED"));
  }
}

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::Create(
    std::filesystem::path logdir, size_t max_open_files) {
  if (logdir.empty()) {
    return absl::InvalidArgumentError("TensorBoard log directory is empty; pass a directory");
  }
  if (max_open_files == 0) {
    return absl::InvalidArgumentError(
        "TensorBoard maximum open files is 0; pass at least 1 so a file can be written");
  }
  std::error_code error;
  std::filesystem::create_directories(logdir, error);
  if (error) {
    return absl::ErrnoToStatus(error.value(), absl::StrCat("TensorBoard log directory ",
                                                           logdir.string(), ": create failed"));
  }
  if (!std::filesystem::is_directory(logdir, error)) {
    return absl::FailedPreconditionError(absl::StrCat("TensorBoard log directory ", logdir.string(),
                                                      " is not a directory; pass a directory"));
  }

  std::array<char, HOST_NAME_MAX + 1> hostname{};
  if (::gethostname(hostname.data(), hostname.size() - 1) != 0 || hostname[0] == '\0') {
    spdlog::warn("gethostname failed ({}); naming TensorBoard event files with localhost",
                 ErrnoMessage(errno));
    std::string_view("localhost").copy(hostname.data(), hostname.size() - 1);
  }
  return std::unique_ptr<TensorBoardWriter>(
      new TensorBoardWriter(std::move(logdir), max_open_files, hostname.data()));
}

TensorBoardWriter::TensorBoardWriter(std::filesystem::path logdir, size_t max_open_files,
                                     std::string hostname)
    : logdir_(std::move(logdir)), max_open_files_(max_open_files), hostname_(std::move(hostname)) {}

TensorBoardWriter::~TensorBoardWriter() {
  std::lock_guard lock(mutex_);
  for (auto& [directory, file] : files_) CloseEventFile(file);
}

size_t TensorBoardWriter::OpenFileCount() const {
  std::lock_guard lock(mutex_);
  return open_order_.size();
}

std::filesystem::path TensorBoardWriter::SweepDirectory(int64_t sweep_id) const {
  return logdir_ / std::to_string(sweep_id);
}

std::filesystem::path TensorBoardWriter::TrialDirectory(int64_t sweep_id, int64_t trial_id) const {
  return SweepDirectory(sweep_id) / std::to_string(trial_id);
}

absl::Status TensorBoardWriter::WriteSweep(
    int64_t sweep_id, const std::vector<std::pair<std::string, std::vector<Value>>>& grid,
    const std::vector<std::string>& metric_names) {
  if (absl::Status valid = ValidateIds(sweep_id, 0); !valid.ok()) return valid;

  tensorboard::HParamsPluginData data;
  data.set_version(kHParamsPluginDataVersion);
  tensorboard::Experiment* experiment = data.mutable_experiment();
  experiment->set_time_created_secs(UnixSeconds());
  for (const auto& [name, values] : grid) {
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep ", sweep_id, ": grid parameter name is empty"));
    }
    *experiment->add_hparam_infos() = HParamInfoOf(name, values);
  }
  for (const std::string& metric_name : metric_names) {
    if (metric_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sweep ", sweep_id, ": metric name is empty"));
    }
    tensorboard::MetricInfo* metric = experiment->add_metric_infos();
    // The scalars are in the session's own run, so the group (the run suffix) is empty.
    metric->mutable_name()->set_tag(metric_name);
    metric->set_dataset_type(DatasetTypeOf(metric_name));
  }

  std::lock_guard lock(mutex_);
  return AppendEvents(SweepDirectory(sweep_id), {HParamsEvent(kExperimentTag, data)});
}

absl::Status TensorBoardWriter::WriteTrialStart(int64_t sweep_id, int64_t trial_id,
                                                const Assignment& params) {
  if (absl::Status valid = ValidateIds(sweep_id, trial_id); !valid.ok()) return valid;

  tensorboard::HParamsPluginData data;
  data.set_version(kHParamsPluginDataVersion);
  tensorboard::SessionStartInfo* start = data.mutable_session_start_info();
  start->set_start_time_secs(UnixSeconds());
  for (const auto& [name, value] : params) {
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep ", sweep_id, " trial ", trial_id, ": parameter name is empty"));
    }
    (*start->mutable_hparams())[name] = ToProtoValue(value);
  }

  std::lock_guard lock(mutex_);
  TrialProgress& progress = trials_[{sweep_id, trial_id}];
  if (progress.started) return absl::OkStatus();
  absl::Status appended =
      AppendEvents(TrialDirectory(sweep_id, trial_id), {HParamsEvent(kSessionStartInfoTag, data)});
  if (appended.ok()) progress.started = true;
  return appended;
}

absl::Status TensorBoardWriter::WriteMetrics(int64_t sweep_id, int64_t trial_id,
                                             const std::vector<v1::MetricRow>& rows) {
  if (absl::Status valid = ValidateIds(sweep_id, trial_id); !valid.ok()) return valid;
  if (rows.empty()) return absl::OkStatus();

  std::vector<std::string> events;
  events.reserve(rows.size());
  int64_t max_epoch = 0;
  for (const v1::MetricRow& row : rows) {
    if (row.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sweep ", sweep_id, " trial ", trial_id,
                                                     ": metric row ", row.seq(),
                                                     " has an empty name"));
    }
    if (std::string_view(row.name()).starts_with(kStepMetricPrefix)) {
      events.push_back(ScalarEvent(row.name(), row.step(), row.value()));
    } else {
      events.push_back(ScalarEvent(row.name(), row.epoch(), row.value()));
      max_epoch = std::max<int64_t>(max_epoch, row.epoch());
    }
  }

  std::lock_guard lock(mutex_);
  absl::Status appended = AppendEvents(TrialDirectory(sweep_id, trial_id), events);
  if (appended.ok()) {
    TrialProgress& progress = trials_[{sweep_id, trial_id}];
    progress.max_epoch = std::max(progress.max_epoch, max_epoch);
  }
  return appended;
}

absl::Status TensorBoardWriter::WriteTrialEnd(
    int64_t sweep_id, int64_t trial_id, v1::TrialState state,
    const std::vector<std::pair<std::string, double>>& final_metrics) {
  if (absl::Status valid = ValidateIds(sweep_id, trial_id); !valid.ok()) return valid;
  absl::StatusOr<tensorboard::SessionStatus> status = SessionStatusForTrialState(state);
  if (!status.ok()) return status.status();
  for (const auto& [name, value] : final_metrics) {
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep ", sweep_id, " trial ", trial_id, ": final metric name is empty"));
    }
  }

  tensorboard::HParamsPluginData data;
  data.set_version(kHParamsPluginDataVersion);
  data.mutable_session_end_info()->set_status(*status);
  data.mutable_session_end_info()->set_end_time_secs(UnixSeconds());

  std::lock_guard lock(mutex_);
  const auto progress = trials_.find({sweep_id, trial_id});
  const int64_t step = progress == trials_.end() ? 0 : progress->second.max_epoch;
  std::vector<std::string> events;
  events.reserve(final_metrics.size() + 1);
  for (const auto& [name, value] : final_metrics) events.push_back(ScalarEvent(name, step, value));
  events.push_back(HParamsEvent(kSessionEndInfoTag, data));

  const std::filesystem::path directory = TrialDirectory(sweep_id, trial_id);
  if (absl::Status appended = AppendEvents(directory, events); !appended.ok()) return appended;

  // The trial is over, so its descriptor and progress are released. A later write for it
  // starts a new event file in the same run.
  if (progress != trials_.end()) trials_.erase(progress);
  if (const auto file = files_.find(directory); file != files_.end()) {
    CloseEventFile(file->second);
    files_.erase(file);
  }
  return absl::OkStatus();
}

absl::Status TensorBoardWriter::AppendEvents(const std::filesystem::path& directory,
                                             const std::vector<std::string>& events) {
  EventFile& file = files_[directory];
  if (file.descriptor < 0) {
    if (absl::Status opened = OpenEventFile(directory, file); !opened.ok()) return opened;
  } else {
    open_order_.splice(open_order_.end(), open_order_, file.open_position);
  }

  std::string bytes;
  if (file.size == 0) bytes = FrameRecord(FileVersionEvent());
  for (const std::string& event : events) bytes += FrameRecord(event);

  if (absl::Status written = WriteAll(file.descriptor, bytes); !written.ok()) {
    // Cut off a partial record so that later appends stay readable.
    if (::ftruncate(file.descriptor, file.size) != 0) {
      spdlog::error("event file {}: truncating a partial record failed: {}", file.path.string(),
                    ErrnoMessage(errno));
    }
    CloseEventFile(file);
    return absl::Status(written.code(),
                        absl::StrCat("event file ", file.path.string(), ": ", written.message()));
  }
  file.size += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::Status TensorBoardWriter::OpenEventFile(const std::filesystem::path& directory,
                                              EventFile& file) {
  if (file.path.empty()) {
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) {
      return absl::ErrnoToStatus(
          error.value(),
          absl::StrCat("TensorBoard run directory ", directory.string(), ": create failed"));
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    file.path = directory / absl::StrCat("events.out.tfevents.", seconds.count(), ".", hostname_);
    spdlog::debug("writing TensorBoard event file {}", file.path.string());
  }

  if (open_order_.size() >= max_open_files_) {
    CloseEventFile(files_.at(open_order_.front()));
  }
  const int descriptor = ::open(file.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (descriptor < 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("event file ", file.path.string(), ": open failed"));
  }
  struct stat info {};
  if (::fstat(descriptor, &info) != 0) {
    const int error_number = errno;
    ::close(descriptor);
    return absl::ErrnoToStatus(error_number,
                               absl::StrCat("event file ", file.path.string(), ": stat failed"));
  }

  file.descriptor = descriptor;
  file.size = info.st_size;
  file.open_position = open_order_.insert(open_order_.end(), directory);
  return absl::OkStatus();
}

void TensorBoardWriter::CloseEventFile(EventFile& file) {
  if (file.descriptor < 0) return;
  if (::close(file.descriptor) != 0) {
    spdlog::warn("event file {}: close failed: {}", file.path.string(), ErrnoMessage(errno));
  }
  file.descriptor = -1;
  open_order_.erase(file.open_position);
}

}  // namespace sweep::server
