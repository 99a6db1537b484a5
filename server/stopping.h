#ifndef SWEEP_SERVER_STOPPING_H_
#define SWEEP_SERVER_STOPPING_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep::server {

// Validation accuracy of each trial's current attempt: trial id -> epoch -> value.
using ValidationHistory = std::map<int64_t, std::map<int32_t, double>>;

struct StopDecision {
  bool stop = false;
  // Why, naming the rule, the epoch or rung and the numbers compared.
  std::string reason;
};

// Fills in defaults (median: grace_epochs 1, min_trials 3; ASHA: min_epochs 1,
// reduction_factor 3) and checks the rule. Returns INVALID_ARGUMENT naming the field.
absl::Status NormalizeStoppingRule(v1::StoppingRule& rule);

// Decides whether `trial_id`, which just reported its validation accuracy for `epoch`,
// stops. `history` holds every trial of the sweep, this one included. Deterministic: the
// same history gives the same decision.
StopDecision DecideStop(const v1::StoppingRule& rule, int64_t trial_id, int32_t epoch,
                        const ValidationHistory& history);

}  // namespace sweep::server

#endif  // SWEEP_SERVER_STOPPING_H_
