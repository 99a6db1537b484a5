#ifndef SWEEP_SERVER_TENSORBOARD_H_
#define SWEEP_SERVER_TENSORBOARD_H_

// TensorBoard event files for sweeps, so `tensorboard --logdir DIR/<sweep_id>` shows each
// trial's scalars and lists the sweep's trials side by side in the HParams dashboard.
//
// Layout under the log directory DIR:
//   DIR/<sweep_id>/events.out.tfevents.<unix-seconds>.<hostname>             experiment summary
//   DIR/<sweep_id>/<trial_id>/events.out.tfevents.<unix-seconds>.<hostname>  one trial
// TensorBoard calls each directory with event files a run. The experiment summary names the
// hyperparameters and metrics of the sweep, and each trial's run contains its session start and
// end summaries and its scalars. With --logdir DIR, TensorBoard shows the trials of every
// sweep but takes the experiment summary of one sweep, chosen arbitrarily.
//
// Each file is a TFRecord file: per record, the length as a little-endian uint64, the masked
// CRC32C of those 8 bytes, the data, and the masked CRC32C of the data. Each record contains one
// serialized Event. The messages are defined in server/tensorboard_events.proto and compiled
// by protoc rather than encoded by hand. Protobuf then encodes the HParams plugin's nested
// messages and google.protobuf.Value maps, and the tests decode them with the same definitions.
//
// Usage:
//   auto writer = TensorBoardWriter::Create("/var/lib/sweep/tensorboard");
//   (*writer)->WriteSweep(sweep_id, grid, {"val_accuracy", "test_accuracy"});
//   (*writer)->WriteTrialStart(sweep_id, trial_id, params);
//   (*writer)->WriteMetrics(sweep_id, trial_id, rows);
//   (*writer)->WriteTrialEnd(sweep_id, trial_id, v1::TRIAL_STATE_COMPLETED, final_metrics);

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/value.h"
#include "server/tensorboard_events.pb.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep::server {

// Computes the CRC32C (Castagnoli) checksum of `data`: reflected polynomial 0x82F63B78,
// initial value and final XOR 0xFFFFFFFF, so Crc32c("123456789") is 0xE3069283.
uint32_t Crc32c(std::string_view data);

// Masks a CRC as TFRecord framing stores it: rotated right by 15 bits plus 0xA282EAD8.
uint32_t MaskCrc32c(uint32_t crc);

// Frames `data` as one TFRecord record.
std::string FrameRecord(std::string_view data);

// Reads every record of a TFRecord file and returns the record data in file order. Returns
// NOT_FOUND or another errno-derived code when the file cannot be read, and DATA_LOSS when a
// length or data checksum does not match or the file ends inside a record.
absl::StatusOr<std::vector<std::string>> ReadEventFile(const std::filesystem::path& path);

// Maps a final trial state to TensorBoard's session status: COMPLETED to STATUS_SUCCESS,
// FAILED to STATUS_FAILURE, and CANCELLED and STOPPED to STATUS_UNKNOWN, because TensorBoard
// has no status for a session ended on purpose. Returns INVALID_ARGUMENT for a state that is
// not final.
absl::StatusOr<tensorboard::SessionStatus> SessionStatusForTrialState(v1::TrialState state);

// Writes the event files of sweeps and trials under one log directory.
//
// Thread-safe. Every call appends its records with one write(2) before returning, so a
// reader sees whole calls. One writer should own a log directory: two writers appending to
// the same file could interleave records.
class TensorBoardWriter final {
 public:
  // Maximum number of event files held open at once. Above it, the least recently written
  // file is closed and reopened for appending when next written.
  static constexpr size_t kDefaultMaxOpenFiles = 256;

  // Creates `logdir` and its parents if missing. Returns the errno-derived status when it
  // cannot be created, or FAILED_PRECONDITION when it exists but is not a directory.
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> Create(
      std::filesystem::path logdir, size_t max_open_files = kDefaultMaxOpenFiles);

  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  ~TensorBoardWriter();

  // Writes the HParams experiment summary of a sweep into DIR/<sweep_id>: one column per
  // grid parameter with its values as a discrete domain, and one metric column per entry of
  // `metric_names` (the scalar tags written by WriteMetrics and WriteTrialEnd). Numbers have
  // type FLOAT64; a parameter whose values mix types has type STRING with the values as text,
  // as TensorBoard infers it. TensorBoard reads only the first experiment summary of a run,
  // so call this once per sweep. Returns INVALID_ARGUMENT for a negative id or an empty name.
  absl::Status WriteSweep(int64_t sweep_id,
                          const std::vector<std::pair<std::string, std::vector<Value>>>& grid,
                          const std::vector<std::string>& metric_names);

  // Writes the session start summary of a trial, with its parameter values, into
  // DIR/<sweep_id>/<trial_id>. Writes only on the first call for a trial before its
  // WriteTrialEnd, so calling it for every attempt is safe. Returns INVALID_ARGUMENT for a negative
  // id or an empty name.
  absl::Status WriteTrialStart(int64_t sweep_id, int64_t trial_id, const Assignment& params);

  // Writes each row as a scalar with tag row.name(), stored as a 32-bit float. A metric whose
  // name starts with "step_" (step_train_loss) is written at row.step(), the global training
  // step. Any other metric is written at row.epoch(). Returns INVALID_ARGUMENT for a negative
  // id or a row with an empty name, and then writes none of the rows.
  absl::Status WriteMetrics(int64_t sweep_id, int64_t trial_id,
                            const std::vector<v1::MetricRow>& rows);

  // Writes `final_metrics` as scalars at the highest epoch that WriteMetrics wrote for the
  // trial through this writer (0 when none), then the session end summary with the status
  // from SessionStatusForTrialState, and closes the trial's file. TensorBoard reads only the
  // first session end summary of a run, so call this once, when the trial reaches its final
  // state. Returns INVALID_ARGUMENT for a negative id, an empty metric name or a state that
  // is not final.
  absl::Status WriteTrialEnd(int64_t sweep_id, int64_t trial_id, v1::TrialState state,
                             const std::vector<std::pair<std::string, double>>& final_metrics);

  // Number of event files currently open, at most the limit given to Create.
  size_t OpenFileCount() const;

 private:
  // One event file, open or closed.
  struct EventFile {
    std::filesystem::path path;
    // -1 while the file is closed.
    int descriptor = -1;
    // Bytes known to be in the file, to undo a partial write.
    int64_t size = 0;
    // Position in open_order_, valid while the file is open.
    std::list<std::filesystem::path>::iterator open_position;
  };

  // Per-trial state, kept until WriteTrialEnd.
  struct TrialProgress {
    bool started = false;
    int64_t max_epoch = 0;
  };

  TensorBoardWriter(std::filesystem::path logdir, size_t max_open_files, std::string hostname);

  std::filesystem::path SweepDirectory(int64_t sweep_id) const;
  std::filesystem::path TrialDirectory(int64_t sweep_id, int64_t trial_id) const;

  // Appends `events` (serialized Event messages) to the event file of `directory`, creating
  // the directory and the file, with its file_version record, on first use.
  absl::Status AppendEvents(const std::filesystem::path& directory,
                            const std::vector<std::string>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status OpenEventFile(const std::filesystem::path& directory, EventFile& file)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void CloseEventFile(EventFile& file) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::filesystem::path logdir_;
  const size_t max_open_files_;
  const std::string hostname_;

  mutable std::mutex mutex_;
  // Keyed by the run directory.
  std::map<std::filesystem::path, EventFile> files_ ABSL_GUARDED_BY(mutex_);
  // Directories of the open files, least recently written first.
  std::list<std::filesystem::path> open_order_ ABSL_GUARDED_BY(mutex_);
  std::map<std::pair<int64_t, int64_t>, TrialProgress> trials_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace sweep::server

#endif  // SWEEP_SERVER_TENSORBOARD_H_
