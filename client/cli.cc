#include "client/cli.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/exit_code.h"
#include "client/format.h"

namespace sweep::client {
namespace {

// Options of every subcommand, filled in by CLI11 while parsing.
struct ParsedOptions {
  GlobalOptions global;
  SubmitOptions submit;
  TrialsOptions trials;
  ExportOptions export_options;
  RefineOptions refine;
  int64_t sweep_id = 0;
  int64_t trial_id = 0;
  uint64_t seed = 0;
};

using Action = std::function<int(CommandContext&)>;

int ExitWithStatus(const absl::Status& status, std::ostream& err) {
  if (!status.ok()) err << "sweep: " << status.message() << "\n";
  return ExitCodeForStatus(status);
}

// Registers a subcommand whose handler returns a status; `action` is set to run it when
// the command line selects the subcommand.
CLI::App* AddCommand(CLI::App& app, const std::string& name, const std::string& description,
                     Action& action, std::function<absl::Status(CommandContext&)> handler) {
  CLI::App* command = app.add_subcommand(name, description);
  command->callback([&action, handler = std::move(handler)] {
    action = [handler](CommandContext& context) {
      return ExitWithStatus(handler(context), context.err());
    };
  });
  return command;
}

// Accepts decimal integers from `minimum` to `maximum`. CLI11's numeric validators parse
// doubles, so they would let "1.5" through and print the range as doubles.
CLI::Validator IntegerInRange(int64_t minimum, int64_t maximum) {
  std::string description = maximum == std::numeric_limits<int64_t>::max()
                                ? absl::StrCat("INT>=", minimum)
                                : absl::StrCat("INT in [", minimum, ", ", maximum, "]");
  return CLI::Validator(
      [minimum, maximum](std::string& text) -> std::string {
        int64_t value = 0;
        if (absl::SimpleAtoi(text, &value) && value >= minimum && value <= maximum) return "";
        if (maximum == std::numeric_limits<int64_t>::max()) {
          return absl::StrCat(text, " is not an integer of at least ", minimum);
        }
        return absl::StrCat(text, " is not an integer from ", minimum, " to ", maximum);
      },
      description);
}

CLI::Validator PositiveInteger() { return IntegerInRange(1, std::numeric_limits<int64_t>::max()); }

// Accepts decimal integers from 0 to 2^64-1. CLI11 2.1 wraps "-1" around to 2^64-1.
CLI::Validator Unsigned64() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t value = 0;
        if (!text.starts_with('-') && absl::SimpleAtoi(text, &value)) return "";
        return absl::StrCat(text, " is not an integer from 0 to ",
                            std::numeric_limits<uint64_t>::max());
      },
      "UINT64");
}

CLI::Validator PositiveSeconds() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (absl::SimpleAtod(text, &value) && std::isfinite(value) && value > 0) return "";
        return absl::StrCat(text, " is not a positive number of seconds");
      },
      "SECONDS");
}

CLI::Option* AddSweepId(CLI::App* command, int64_t& sweep_id) {
  return command->add_option("SWEEP", sweep_id, "Sweep id, as `sweep submit` printed it")
      ->required()
      ->check(PositiveInteger());
}

std::optional<uint64_t> SeedIfGiven(const CLI::Option* option, uint64_t seed) {
  return option->count() > 0 ? std::optional<uint64_t>(seed) : std::nullopt;
}

void AddGlobalOptions(CLI::App& app, GlobalOptions& global) {
  app.add_option("--coordinator", global.coordinator,
                 "Coordinator address as HOST:PORT; default: $SWEEP_COORDINATOR, else "
                 "127.0.0.1:50051")
      ->envname("SWEEP_COORDINATOR");
  app.add_flag("--json", global.json,
               "Print JSON instead of text; watch prints one JSON object per event. NaN and "
               "infinite numbers print as null");
  app.add_option("--timeout", global.timeout_seconds,
                 "Deadline of each call to the coordinator, in seconds; the watch stream has "
                 "none (default 10)")
      ->check(PositiveSeconds());
  app.add_option("--token-file", global.token_file,
                 "File with the client token that the coordinator requires, sent with every "
                 "call; default: the token in $SWEEP_CLIENT_TOKEN, else no token")
      ->type_name("FILE");
  app.add_option("--tls-ca", global.tls_ca_file,
                 "PEM CA certificate; connects with TLS and verifies the coordinator's "
                 "certificate against it (default: plaintext)")
      ->type_name("FILE");
  app.add_option("--tls-server-name", global.tls_server_name,
                 "With --tls-ca: host name to verify the coordinator's certificate against "
                 "instead of the host in --coordinator")
      ->type_name("NAME");
}

void AddSubmit(CLI::App& app, ParsedOptions& parsed, Action& action) {
  SubmitOptions& submit = parsed.submit;
  CLI::App* command =
      app.add_subcommand("submit", "Submit a sweep over a grid file and print its id");
  CLI::Option* grid = command->add_option("GRID", submit.grid_path,
                                          "Grid file: a JSON object mapping each "
                                          "hyperparameter to a list of values");
  command
      ->add_option("--hparams_path,--hparams-path", submit.hparams_path,
                   "Grid file, as the old script's flag; use instead of the positional GRID")
      ->excludes(grid);
  command
      ->add_option("--grid-size,--grid_size", submit.grid_size,
                   "Number of combinations to sample as trials; a size above the combination "
                   "count takes every combination once")
      ->required()
      ->check(PositiveInteger());
  CLI::Option* seed =
      command
          ->add_option("--seed", parsed.seed,
                       "Seed of the sample, 0 to 2^64-1; when omitted, a random seed is drawn "
                       "and printed")
          ->check(Unsigned64());
  command->add_option("--name", submit.name, "Name of the sweep, shown by `sweep status`");
  command->add_flag("--dry-run", submit.dry_run,
                    "Print the combination count and the sampled trials without a coordinator "
                    "and store nothing");
  command->add_option("--logdir", submit.logdir,
                      "Accepted for the old script's sake and ignored: the coordinator's "
                      "--logdir sets where TensorBoard output goes");
  command
      ->add_option("--stop", submit.stop_rule,
                   "Early stopping rule: median (median stopping rule) or asha (asynchronous "
                   "successive halving); default: none, every trial runs all its epochs")
      ->check(CLI::IsMember({"median", "asha"}));
  command
      ->add_option("--grace-epochs", submit.grace_epochs,
                   "With --stop median: epochs every trial runs before it can be stopped; 0 "
                   "takes the default, 1")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--min-trials", submit.min_trials,
                   "With --stop median: other trials that must have reached an epoch before "
                   "a trial is compared at it (default 3)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--min-epochs", submit.min_epochs,
                   "With --stop asha: epoch of the first rung (default 1)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--reduction-factor", submit.reduction_factor,
                   "With --stop asha: rungs are this factor apart, and the top 1/factor of "
                   "the trials at a rung go on (default 3)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--max-epochs", submit.max_epochs,
                   "With --stop asha: no rung at or past this epoch (default 0: no bound)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--max-concurrent", submit.max_concurrent,
                   "Most trials of this sweep running at once (default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  command->callback([&parsed, &action, seed] {
    parsed.submit.seed = SeedIfGiven(seed, parsed.seed);
    action = [&parsed](CommandContext& context) {
      return ExitWithStatus(RunSubmit(context, parsed.submit), context.err());
    };
  });
}

void AddStatus(CLI::App& app, ParsedOptions& parsed, Action& action) {
  CLI::App* command = app.add_subcommand(
      "status", "List sweeps with their state and trial counts, or show one sweep");
  CLI::Option* sweep_id =
      command->add_option("SWEEP", parsed.sweep_id, "Sweep id; omit it to list every sweep")
          ->check(PositiveInteger());
  command->callback([&parsed, &action, sweep_id] {
    action = [&parsed, given = sweep_id->count() > 0](CommandContext& context) {
      std::optional<int64_t> id = given ? std::optional<int64_t>(parsed.sweep_id) : std::nullopt;
      return ExitWithStatus(RunStatus(context, id), context.err());
    };
  });
}

void AddTrials(CLI::App& app, ParsedOptions& parsed, Action& action) {
  TrialsOptions& trials = parsed.trials;
  CLI::App* command =
      AddCommand(app, "trials", "Show a sweep's trials as a table, best first", action,
                 [&trials](CommandContext& context) { return RunTrials(context, trials); });
  AddSweepId(command, trials.sweep_id);
  command->add_option("--state", trials.state,
                      "Show only trials in this state: pending, running, completed, failed, "
                      "cancelled or stopped");
  command->add_option("--sort", trials.sort_metric,
                      "Metric to sort by, highest first; trials without a finite value come "
                      "last (default val_accuracy)");
  command->add_option("--limit", trials.limit, "Show at most this many trials; 0 shows all")
      ->check(IntegerInRange(0, std::numeric_limits<int32_t>::max()));
}

void AddSingleIdCommands(CLI::App& app, ParsedOptions& parsed, Action& action) {
  CLI::App* best =
      AddCommand(app, "best", "Show the completed trial with the highest val_accuracy", action,
                 [&parsed](CommandContext& context) { return RunBest(context, parsed.sweep_id); });
  AddSweepId(best, parsed.sweep_id);

  CLI::App* trial = AddCommand(
      app, "trial", "Show one trial: parameters, state, metrics and per-epoch history", action,
      [&parsed](CommandContext& context) { return RunTrial(context, parsed.trial_id); });
  trial->add_option("TRIAL", parsed.trial_id, "Trial id, as `sweep trials` lists it")
      ->required()
      ->check(PositiveInteger());

  CLI::App* cancel =
      AddCommand(app, "cancel", "Cancel a sweep's pending and running trials, or one trial", action,
                 [&parsed](CommandContext& context) {
                   return RunCancel(context, parsed.sweep_id, parsed.trial_id);
                 });
  AddSweepId(cancel, parsed.sweep_id);
  cancel->add_option("--trial", parsed.trial_id, "Cancel only this trial of the sweep")
      ->check(PositiveInteger());

  AddCommand(app, "workers",
             "List workers: host, device, current trial and seconds since the last heartbeat",
             action, [](CommandContext& context) { return RunWorkers(context); });
}

void AddExport(CLI::App& app, ParsedOptions& parsed, Action& action) {
  ExportOptions& options = parsed.export_options;
  CLI::App* command = AddCommand(
      app, "export", "Write a sweep's trials, or every metric row, as CSV or JSON", action,
      [&options](CommandContext& context) { return RunExport(context, options); });
  AddSweepId(command, options.sweep_id);
  command->add_option("--format", options.format, "Output format: csv or json (default csv)")
      ->check(CLI::IsMember({"csv", "json"}));
  command->add_flag("--metrics", options.metric_rows,
                    "Write every metric row (trial, attempt, epoch, step, name, value) instead "
                    "of one row per trial");
  command->add_option("--output", options.output_path,
                      "File to write, replacing its contents; default stdout");
}

void AddWatch(CLI::App& app, ParsedOptions& parsed, Action& action) {
  CLI::App* command = app.add_subcommand(
      "watch", "Follow a sweep until it ends; exits 5 when it ends failed or cancelled");
  AddSweepId(command, parsed.sweep_id);
  command->callback([&parsed, &action] {
    action = [&parsed](CommandContext& context) {
      absl::StatusOr<v1::SweepState> state = RunWatch(context, parsed.sweep_id);
      if (!state.ok()) return ExitWithStatus(state.status(), context.err());
      if (*state == v1::SWEEP_STATE_COMPLETED) return static_cast<int>(kExitSuccess);
      context.err() << "sweep: sweep " << parsed.sweep_id << " ended " << SweepStateName(*state)
                    << "\n";
      return static_cast<int>(kExitSweepNotCompleted);
    };
  });
}

void AddRefine(CLI::App& app, ParsedOptions& parsed, Action& action) {
  RefineOptions& refine = parsed.refine;
  CLI::App* command = app.add_subcommand(
      "refine",
      "Derive a finer grid around a sweep's best completed trials and submit it as a child "
      "sweep");
  AddSweepId(command, refine.sweep_id);
  command
      ->add_option("--top", refine.top,
                   "Number of best completed trials, by val_accuracy, to refine around")
      ->required()
      ->check(PositiveInteger());
  command
      ->add_option("--grid-size,--grid_size", refine.grid_size,
                   "Number of combinations of the derived grid to sample as trials")
      ->required()
      ->check(PositiveInteger());
  CLI::Option* seed =
      command
          ->add_option("--seed", parsed.seed,
                       "Seed of the sample, 0 to 2^64-1; when omitted, a random seed is drawn "
                       "and printed")
          ->check(Unsigned64());
  command->add_option("--name", refine.name,
                      "Name of the new sweep (default \"refine of sweep N\")");
  command->add_flag("--dry-run", refine.dry_run,
                    "Print the derived grid and its sample and submit nothing");
  command->callback([&parsed, &action, seed] {
    parsed.refine.seed = SeedIfGiven(seed, parsed.seed);
    action = [&parsed](CommandContext& context) {
      return ExitWithStatus(RunRefine(context, parsed.refine), context.err());
    };
  });
}

}  // namespace

int RunCli(int argc, const char* const* argv, const CliOutput& output) {
  CLI::App app("Submit and inspect hyperparameter sweeps of a LeNet-5 on Fashion-MNIST.", "sweep");
  // Set before adding subcommands, which copy it when they are created.
  app.failure_message([](const CLI::App*, const CLI::Error& error) {
    return absl::StrCat("sweep: ", error.what(), "\nRun with --help for usage.\n");
  });
  app.require_subcommand(1);
  // Lets global options such as --json follow the subcommand's name.
  app.fallthrough();

  ParsedOptions parsed;
  Action action;
  AddGlobalOptions(app, parsed.global);
  AddSubmit(app, parsed, action);
  AddStatus(app, parsed, action);
  AddTrials(app, parsed, action);
  AddSingleIdCommands(app, parsed, action);
  AddExport(app, parsed, action);
  AddWatch(app, parsed, action);
  AddRefine(app, parsed, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error, output.out, output.err);
    return code == 0 ? static_cast<int>(kExitSuccess) : static_cast<int>(kExitInvalidInput);
  }

  // The token and CA files are read before the command runs, so a bad file fails every
  // command, offline ones included.
  absl::StatusOr<ChannelSecurity> security =
      LoadChannelSecurity(parsed.global.token_file, std::getenv(kClientTokenVariable),
                          parsed.global.tls_ca_file, parsed.global.tls_server_name);
  if (!security.ok()) return ExitWithStatus(security.status(), output.err);
  CommandContext context(parsed.global, *std::move(security), output);
  try {
    return action(context);
  } catch (const std::exception& error) {
    output.err << "sweep: unexpected error: " << error.what() << "\n";
    return kExitOtherError;
  }
}

}  // namespace sweep::client
