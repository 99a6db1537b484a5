#include "client/commands.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/export.h"
#include "client/format.h"
#include "client/submit_view.h"
#include "client/views.h"
#include "client/watch_view.h"
#include "common/params_proto.h"
#include "common/refine.h"
#include "common/search_space.h"

namespace sweep::client {
namespace {

// Returns `status` with `prefix` in front of its message and the same code.
absl::Status Prefixed(const absl::Status& status, const std::string& prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

void PrintJson(CommandContext& context, const nlohmann::json& json) {
  context.out() << JsonText(json, 2) << "\n";
}

absl::StatusOr<std::string> ReadGridFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid file \"", path, "\" cannot be read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("grid file \"", path, "\" cannot be read"));
  }
  return text.str();
}

// Returns the seed the user passed, or draws one and prints it so the sample can be drawn
// again.
uint64_t ResolveSeed(const std::optional<uint64_t>& seed, std::ostream& err) {
  if (seed.has_value()) return *seed;
  std::random_device device;
  uint64_t drawn = (static_cast<uint64_t>(device()) << 32) | device();
  err << "note: no --seed given, so seed " << drawn << " was drawn at random; pass --seed " << drawn
      << " to draw the same sample again\n";
  return drawn;
}

absl::Status PrintDryRun(CommandContext& context, std::string_view grid_json, int64_t grid_size,
                         uint64_t seed, std::string_view grid_line) {
  absl::StatusOr<DryRun> dry_run = PlanDryRun(grid_json, grid_size, seed);
  if (!dry_run.ok()) return dry_run.status();

  if (context.options().json) {
    nlohmann::json json = DryRunToJson(*dry_run);
    if (!grid_line.empty()) json["grid"] = nlohmann::json::parse(grid_line, nullptr, false);
    PrintJson(context, json);
  } else {
    if (!grid_line.empty()) context.out() << "grid: " << grid_line << "\n";
    context.out() << RenderDryRun(*dry_run);
  }
  context.err() << RenderSubmitSummary(dry_run->combination_count,
                                       static_cast<int64_t>(dry_run->sample.size()), grid_size,
                                       seed, /*dry_run=*/true);
  return absl::OkStatus();
}

absl::Status SubmitGrid(CommandContext& context, v1::SubmitSweepRequest request) {
  absl::StatusOr<v1::SubmitSweepResponse> response = context.client().SubmitSweep(request);
  if (!response.ok()) return response.status();

  const v1::Sweep& sweep = response->sweep();
  if (context.options().json) {
    PrintJson(context, SweepToJson(sweep));
  } else {
    context.out() << sweep.id() << "\n";
  }
  context.err() << "sweep " << sweep.id() << ": "
                << RenderSubmitSummary(sweep.combination_count(), sweep.trial_count(),
                                       sweep.grid_size(), sweep.seed(), /*dry_run=*/false);
  return absl::OkStatus();
}

// Completed trials of the sweep with a finite val_accuracy, best first.
absl::StatusOr<std::vector<v1::Trial>> ListCompletedBestFirst(CommandContext& context,
                                                              int64_t sweep_id) {
  v1::ListTrialsRequest request;
  request.set_sweep_id(sweep_id);
  request.set_state(v1::TRIAL_STATE_COMPLETED);
  request.set_sort_by(std::string(kValAccuracy));
  absl::StatusOr<std::vector<v1::Trial>> trials = context.client().ListTrials(request);
  if (!trials.ok()) return trials.status();

  SortTrialsBestFirst(*trials, kValAccuracy);
  std::erase_if(*trials, [](const v1::Trial& trial) {
    std::optional<double> value = FindMetric(trial, kValAccuracy);
    return trial.state() != v1::TRIAL_STATE_COMPLETED || !value.has_value() ||
           !std::isfinite(*value);
  });
  if (trials->empty()) {
    return absl::NotFoundError(
        absl::StrCat("sweep ", sweep_id, " has no completed trial with a finite ", kValAccuracy,
                     " yet: check `sweep status ", sweep_id, "` and try again later"));
  }
  return trials;
}

absl::Status WriteOutput(CommandContext& context, const std::string& path,
                         const std::string& text) {
  if (path.empty()) {
    context.out() << text;
    return absl::OkStatus();
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("output file \"", path, "\" cannot be opened: ", std::strerror(errno)));
  }
  file << text;
  file.close();
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("output file \"", path, "\" could not be written"));
  }
  return absl::OkStatus();
}

// Prints WatchSweep events: JSON lines, a block redrawn in place on a terminal, or one
// plain line per event.
class WatchPrinter {
 public:
  explicit WatchPrinter(CommandContext& context) : context_(context) {}

  void Print(const v1::WatchSweepEvent& event) {
    std::ostream& out = context_.out();
    if (context_.options().json) {
      out << JsonText(WatchEventToJson(event), -1) << "\n";
    } else if (context_.output().out_is_terminal) {
      const auto& width_function = context_.output().terminal_width;
      size_t width = width_function ? width_function() : 0;
      std::vector<std::string> lines = RenderWatchBlock(event, width);
      out << ClearPreviousBlock(previous_line_count_);
      for (const auto& line : lines) out << line << "\n";
      previous_line_count_ = lines.size();
    } else {
      // The coordinator also resends an unchanged state every few seconds; a log shows
      // each state once.
      std::string line = RenderWatchLine(event);
      if (line != previous_line_) out << line << "\n";
      previous_line_ = std::move(line);
    }
    out.flush();
  }

 private:
  CommandContext& context_;
  size_t previous_line_count_ = 0;
  std::string previous_line_;
};

}  // namespace

CommandContext::CommandContext(const GlobalOptions& options, ChannelSecurity security,
                               const CliOutput& output)
    : options_(options), security_(std::move(security)), output_(output) {}

CoordinatorClient& CommandContext::client() {
  if (client_ == nullptr) {
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(options_.timeout_seconds));
    client_ = std::make_unique<CoordinatorClient>(options_.coordinator, timeout, security_);
  }
  return *client_;
}

absl::Status RunSubmit(CommandContext& context, const SubmitOptions& options) {
  if (!options.logdir.empty()) {
    context.err() << "note: --logdir is accepted but has no effect here; the coordinator's "
                     "--logdir flag sets where TensorBoard output goes\n";
  }
  const std::string& path = options.grid_path.empty() ? options.hparams_path : options.grid_path;
  if (path.empty()) {
    return absl::InvalidArgumentError("no grid file given: pass GRID.json or --hparams_path FILE");
  }
  absl::StatusOr<std::string> grid_json = ReadGridFile(path);
  if (!grid_json.ok()) return grid_json.status();
  std::string prefix = absl::StrCat("grid file \"", path, "\": ");
  uint64_t seed = ResolveSeed(options.seed, context.err());

  if (options.dry_run) {
    absl::Status status = PrintDryRun(context, *grid_json, options.grid_size, seed, "");
    return status.ok() ? status : Prefixed(status, prefix);
  }
  // Validating here reports a bad grid file even when no coordinator is running.
  if (absl::StatusOr<Grid> grid = Grid::Parse(*grid_json); !grid.ok()) {
    return Prefixed(grid.status(), prefix);
  }
  v1::SubmitSweepRequest request;
  request.set_grid_json(*grid_json);
  request.set_grid_size(options.grid_size);
  request.set_seed(seed);
  request.set_name(options.name);
  request.set_max_concurrent_trials(options.max_concurrent);
  if (options.stop_rule == "median") {
    v1::MedianStoppingRule& median = *request.mutable_stopping_rule()->mutable_median();
    median.set_grace_epochs(options.grace_epochs);
    median.set_min_trials(options.min_trials);
  } else if (options.stop_rule == "asha") {
    v1::AshaRule& asha = *request.mutable_stopping_rule()->mutable_asha();
    asha.set_min_epochs(options.min_epochs);
    asha.set_reduction_factor(options.reduction_factor);
    asha.set_max_epochs(options.max_epochs);
  }
  return SubmitGrid(context, std::move(request));
}

absl::Status RunStatus(CommandContext& context, std::optional<int64_t> sweep_id) {
  if (sweep_id.has_value()) {
    absl::StatusOr<v1::Sweep> sweep = context.client().GetSweep(*sweep_id);
    if (!sweep.ok()) return sweep.status();
    if (context.options().json) {
      PrintJson(context, SweepToJson(*sweep));
    } else {
      context.out() << RenderSweepDetail(*sweep);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::Sweep>> sweeps = context.client().ListSweeps();
  if (!sweeps.ok()) return sweeps.status();
  if (context.options().json) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& sweep : *sweeps) array.push_back(SweepToJson(sweep));
    PrintJson(context, array);
  } else {
    context.out() << RenderSweepList(*sweeps);
  }
  return absl::OkStatus();
}

absl::Status RunTrials(CommandContext& context, const TrialsOptions& options) {
  v1::ListTrialsRequest request;
  request.set_sweep_id(options.sweep_id);
  if (!options.state.empty()) {
    absl::StatusOr<v1::TrialState> state = ParseTrialState(options.state);
    if (!state.ok()) return state.status();
    request.set_state(*state);
  }
  request.set_sort_by(options.sort_metric);
  request.set_limit(options.limit);
  absl::StatusOr<std::vector<v1::Trial>> trials = context.client().ListTrials(request);
  if (!trials.ok()) return trials.status();

  // The coordinator already sorts; sorting again keeps NaN and infinities off the top
  // whatever order the reply has.
  SortTrialsBestFirst(*trials, options.sort_metric);
  if (options.limit > 0 && trials->size() > static_cast<size_t>(options.limit)) {
    trials->resize(options.limit);
  }
  if (context.options().json) {
    PrintJson(context, ExportTrialsJson(*trials));
  } else {
    context.out() << RenderTrialTable(*trials, options.sort_metric);
  }
  return absl::OkStatus();
}

absl::Status RunBest(CommandContext& context, int64_t sweep_id) {
  absl::StatusOr<std::vector<v1::Trial>> trials = ListCompletedBestFirst(context, sweep_id);
  if (!trials.ok()) return trials.status();
  const v1::Trial& best = trials->front();
  if (context.options().json) {
    PrintJson(context, TrialToJson(best));
  } else {
    context.out() << RenderTrialDetail(best);
  }
  return absl::OkStatus();
}

absl::Status RunTrial(CommandContext& context, int64_t trial_id) {
  absl::StatusOr<v1::GetTrialResponse> response = context.client().GetTrial(trial_id);
  if (!response.ok()) return response.status();

  if (context.options().json) {
    nlohmann::json history = nlohmann::json::array();
    for (const auto& stored : response->history()) history.push_back(StoredMetricToJson(stored));
    PrintJson(context, {{"trial", TrialToJson(response->trial())}, {"history", history}});
    return absl::OkStatus();
  }
  context.out() << RenderTrialDetail(response->trial());
  if (response->history().empty()) {
    context.out() << "\nhistory: no metrics stored yet\n";
  } else {
    context.out() << "\nhistory (last value of each metric per attempt and epoch):\n"
                  << RenderMetricHistory(response->history());
  }
  return absl::OkStatus();
}

absl::Status RunCancel(CommandContext& context, int64_t sweep_id, int64_t trial_id) {
  absl::StatusOr<v1::CancelResponse> response = context.client().Cancel(sweep_id, trial_id);
  if (!response.ok()) return response.status();
  if (context.options().json) {
    PrintJson(context, {{"cancelled_pending", response->cancelled_pending()},
                        {"cancelled_running", response->cancelled_running()}});
  } else {
    context.out() << "cancelled " << response->cancelled_pending() << " pending and "
                  << response->cancelled_running() << " running trials\n";
  }
  return absl::OkStatus();
}

absl::Status RunWorkers(CommandContext& context) {
  absl::StatusOr<std::vector<v1::Worker>> workers = context.client().ListWorkers();
  if (!workers.ok()) return workers.status();
  int64_t now_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  if (context.options().json) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& worker : *workers) array.push_back(WorkerToJson(worker, now_unix_ms));
    PrintJson(context, array);
  } else {
    context.out() << RenderWorkers(*workers, now_unix_ms);
  }
  return absl::OkStatus();
}

absl::Status RunExport(CommandContext& context, const ExportOptions& options) {
  v1::ListTrialsRequest request;
  request.set_sweep_id(options.sweep_id);
  absl::StatusOr<std::vector<v1::Trial>> trials = context.client().ListTrials(request);
  if (!trials.ok()) return trials.status();
  std::sort(trials->begin(), trials->end(),
            [](const v1::Trial& a, const v1::Trial& b) { return a.id() < b.id(); });

  bool json = options.format == "json";
  std::string text;
  if (options.metric_rows) {
    std::vector<TrialHistory> histories;
    for (const auto& trial : *trials) {
      absl::StatusOr<v1::GetTrialResponse> response = context.client().GetTrial(trial.id());
      if (!response.ok()) return response.status();
      histories.push_back({trial.id(), response->history()});
    }
    text =
        json ? JsonText(ExportMetricRowsJson(histories), 2) + "\n" : ExportMetricRowsCsv(histories);
  } else {
    text = json ? JsonText(ExportTrialsJson(*trials), 2) + "\n" : ExportTrialsCsv(*trials);
  }
  return WriteOutput(context, options.output_path, text);
}

absl::StatusOr<v1::SweepState> RunWatch(CommandContext& context, int64_t sweep_id) {
  // A unary call first, so that an unknown id or an unreachable coordinator fails within
  // the deadline instead of on a stream that has none.
  absl::StatusOr<v1::Sweep> sweep = context.client().GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();

  WatchPrinter printer(context);
  v1::SweepState state = sweep->state();
  absl::Status status =
      context.client().WatchSweep(sweep_id, [&](const v1::WatchSweepEvent& event) {
        printer.Print(event);
        state = event.sweep().state();
      });
  if (!status.ok()) return status;
  if (state == v1::SWEEP_STATE_RUNNING || state == v1::SWEEP_STATE_UNSPECIFIED) {
    return absl::UnavailableError(absl::StrCat(
        "coordinator at ", context.options().coordinator, " ended the watch of sweep ", sweep_id,
        " while it is still running: run `sweep watch ", sweep_id, "` again"));
  }
  return state;
}

absl::Status RunRefine(CommandContext& context, const RefineOptions& options) {
  absl::StatusOr<v1::Sweep> parent = context.client().GetSweep(options.sweep_id);
  if (!parent.ok()) return parent.status();
  absl::StatusOr<Grid> parent_grid = Grid::Parse(parent->grid_json());
  if (!parent_grid.ok()) {
    return Prefixed(parent_grid.status(),
                    absl::StrCat("stored grid of sweep ", options.sweep_id, ": "));
  }
  absl::StatusOr<std::vector<v1::Trial>> best = ListCompletedBestFirst(context, options.sweep_id);
  if (!best.ok()) return best.status();

  if (best->size() < static_cast<size_t>(options.top)) {
    context.err() << "note: sweep " << options.sweep_id << " has only " << best->size()
                  << " completed trials with a finite " << kValAccuracy
                  << ", so the grid is refined around those\n";
  }
  best->resize(std::min(best->size(), static_cast<size_t>(options.top)));
  std::vector<Assignment> top;
  for (const auto& trial : *best) {
    absl::StatusOr<Assignment> assignment = AssignmentFromProto(trial.params());
    if (!assignment.ok()) {
      return Prefixed(assignment.status(), absl::StrCat("trial ", trial.id(), ": "));
    }
    top.push_back(*std::move(assignment));
  }
  absl::StatusOr<Grid> refined = RefineGrid(*parent_grid, top);
  if (!refined.ok()) return refined.status();

  std::string grid_json = refined->CanonicalJson();
  uint64_t seed = ResolveSeed(options.seed, context.err());
  if (options.dry_run) {
    return PrintDryRun(context, grid_json, options.grid_size, seed, grid_json);
  }
  context.err() << "refined grid from the top " << best->size() << " trials of sweep "
                << options.sweep_id << ": " << grid_json << "\n";
  v1::SubmitSweepRequest request;
  request.set_grid_json(grid_json);
  request.set_grid_size(options.grid_size);
  request.set_seed(seed);
  request.set_name(options.name.empty() ? absl::StrCat("refine of sweep ", options.sweep_id)
                                        : options.name);
  request.set_parent_sweep_id(options.sweep_id);
  return SubmitGrid(context, std::move(request));
}

}  // namespace sweep::client
