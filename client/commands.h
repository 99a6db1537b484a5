#ifndef SWEEP_CLIENT_COMMANDS_H_
#define SWEEP_CLIENT_COMMANDS_H_

// Handlers of the `sweep` subcommands. Each validates its options, calls the coordinator
// and prints the result; cli.cc parses the command line and maps the returned status to an
// exit code.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli.h"
#include "client/coordinator_client.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep::client {

// Options that every subcommand accepts.
struct GlobalOptions {
  std::string coordinator = "127.0.0.1:50051";
  bool json = false;
  double timeout_seconds = 10;
  // File with the client token. When empty, the token comes from SWEEP_CLIENT_TOKEN.
  std::string token_file;
  // PEM CA certificate file. When set, the client connects with TLS.
  std::string tls_ca_file;
  // Name to verify the coordinator's certificate against instead of the address's host.
  std::string tls_server_name;
};

// Shared state of a handler: the global options, the output streams and a coordinator
// client created on first use, so that commands working offline never open a channel.
class CommandContext {
 public:
  CommandContext(const GlobalOptions& options, ChannelSecurity security, const CliOutput& output);

  const GlobalOptions& options() const { return options_; }
  std::ostream& out() const { return output_.out; }
  std::ostream& err() const { return output_.err; }
  const CliOutput& output() const { return output_; }
  CoordinatorClient& client();

 private:
  const GlobalOptions& options_;
  const ChannelSecurity security_;
  const CliOutput& output_;
  std::unique_ptr<CoordinatorClient> client_;
};

struct SubmitOptions {
  // The positional GRID.json and the old script's --hparams_path; one of them is set.
  std::string grid_path;
  std::string hparams_path;
  int64_t grid_size = 0;
  // Drawn at random, and printed, when unset.
  std::optional<uint64_t> seed;
  std::string name;
  bool dry_run = false;
  // Accepted for the old script's sake; the coordinator's --logdir is what takes effect.
  std::string logdir;
  // Early stopping: "" (none), "median" or "asha"; zero values take the coordinator's
  // defaults.
  std::string stop_rule;
  int32_t grace_epochs = 0;
  int32_t min_trials = 0;
  int32_t min_epochs = 0;
  int32_t reduction_factor = 0;
  int32_t max_epochs = 0;
  // Most trials of the sweep running at once; 0 means no limit.
  int32_t max_concurrent = 0;
};

struct TrialsOptions {
  int64_t sweep_id = 0;
  // A trial state name, or empty for every state.
  std::string state;
  std::string sort_metric = "val_accuracy";
  // 0 means no limit.
  int32_t limit = 0;
};

struct ExportOptions {
  int64_t sweep_id = 0;
  // "csv" or "json".
  std::string format = "csv";
  bool metric_rows = false;
  // Empty means stdout.
  std::string output_path;
};

struct RefineOptions {
  int64_t sweep_id = 0;
  int64_t top = 0;
  int64_t grid_size = 0;
  std::optional<uint64_t> seed;
  std::string name;
  bool dry_run = false;
};

absl::Status RunSubmit(CommandContext& context, const SubmitOptions& options);
// Lists every sweep when `sweep_id` is unset, else shows that sweep.
absl::Status RunStatus(CommandContext& context, std::optional<int64_t> sweep_id);
absl::Status RunTrials(CommandContext& context, const TrialsOptions& options);
absl::Status RunBest(CommandContext& context, int64_t sweep_id);
absl::Status RunTrial(CommandContext& context, int64_t trial_id);
// Cancels the whole sweep when `trial_id` is 0, else that trial.
absl::Status RunCancel(CommandContext& context, int64_t sweep_id, int64_t trial_id);
absl::Status RunWorkers(CommandContext& context);
absl::Status RunExport(CommandContext& context, const ExportOptions& options);
// Prints the sweep's progress until it ends and returns its final state.
absl::StatusOr<v1::SweepState> RunWatch(CommandContext& context, int64_t sweep_id);
absl::Status RunRefine(CommandContext& context, const RefineOptions& options);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_COMMANDS_H_
