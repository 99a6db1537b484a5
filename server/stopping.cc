#include "server/stopping.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/value.h"

namespace sweep::server {
namespace {

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

StopDecision DecideMedian(const v1::MedianStoppingRule& rule, int64_t trial_id, int32_t epoch,
                          const ValidationHistory& history) {
  if (epoch <= rule.grace_epochs()) return {};
  const auto own = history.find(trial_id);
  if (own == history.end()) return {};
  double best = -INFINITY;
  for (const auto& [reported_epoch, value] : own->second) {
    if (reported_epoch <= epoch && std::isfinite(value)) best = std::max(best, value);
  }

  std::vector<double> running_averages;
  for (const auto& [other_id, values] : history) {
    if (other_id == trial_id || !values.contains(epoch)) continue;
    double sum = 0;
    int count = 0;
    for (const auto& [reported_epoch, value] : values) {
      if (reported_epoch > epoch || !std::isfinite(value)) continue;
      sum += value;
      ++count;
    }
    if (count > 0) running_averages.push_back(sum / count);
  }
  if (static_cast<int>(running_averages.size()) < rule.min_trials()) return {};
  const double median = Median(running_averages);
  if (best >= median) return {};
  return {true, "median stopping rule at epoch " + std::to_string(epoch) + ": best val_accuracy " +
                    FormatDouble(best) + " is below the median running average " +
                    FormatDouble(median) + " of " + std::to_string(running_averages.size()) +
                    (running_averages.size() == 1 ? " other trial" : " other trials")};
}

StopDecision DecideAsha(const v1::AshaRule& rule, int64_t trial_id, int32_t epoch,
                        const ValidationHistory& history) {
  // Rungs sit at min_epochs * factor^k epochs, below max_epochs when that is set.
  int64_t rung = rule.min_epochs();
  int rung_index = 0;
  while (rung < epoch) {
    rung *= rule.reduction_factor();
    ++rung_index;
  }
  if (rung != epoch) return {};
  if (rule.max_epochs() > 0 && rung >= rule.max_epochs()) return {};
  const auto own = history.find(trial_id);
  if (own == history.end() || !own->second.contains(epoch)) return {};
  const double value = own->second.at(epoch);

  std::vector<double> at_rung;
  for (const auto& [other_id, values] : history) {
    const auto found = values.find(epoch);
    if (found != values.end()) at_rung.push_back(found->second);
  }
  const size_t factor = static_cast<size_t>(rule.reduction_factor());
  // Too few results to rank: the trial goes on.
  if (at_rung.size() < factor) return {};
  const size_t keep = (at_rung.size() + factor - 1) / factor;
  const size_t better = static_cast<size_t>(
      std::count_if(at_rung.begin(), at_rung.end(), [&](double other) { return other > value; }));
  if (std::isfinite(value) && better < keep) return {};
  return {true, "ASHA rung " + std::to_string(rung_index) + " at epoch " + std::to_string(epoch) +
                    ": val_accuracy " + FormatDouble(value) + " is not in the top " +
                    std::to_string(keep) + " of " + std::to_string(at_rung.size()) + " trials"};
}

}  // namespace

absl::Status NormalizeStoppingRule(v1::StoppingRule& rule) {
  switch (rule.rule_case()) {
    case v1::StoppingRule::kMedian: {
      v1::MedianStoppingRule& median = *rule.mutable_median();
      if (median.grace_epochs() == 0) median.set_grace_epochs(1);
      if (median.min_trials() == 0) median.set_min_trials(3);
      if (median.grace_epochs() < 0) {
        return absl::InvalidArgumentError("median stopping rule: grace_epochs " +
                                          std::to_string(median.grace_epochs()) +
                                          " is negative; pass 1 or more");
      }
      if (median.min_trials() < 1) {
        return absl::InvalidArgumentError("median stopping rule: min_trials " +
                                          std::to_string(median.min_trials()) +
                                          " is below 1; pass 1 or more");
      }
      return absl::OkStatus();
    }
    case v1::StoppingRule::kAsha: {
      v1::AshaRule& asha = *rule.mutable_asha();
      if (asha.min_epochs() == 0) asha.set_min_epochs(1);
      if (asha.reduction_factor() == 0) asha.set_reduction_factor(3);
      if (asha.min_epochs() < 1) {
        return absl::InvalidArgumentError("ASHA rule: min_epochs " +
                                          std::to_string(asha.min_epochs()) +
                                          " is below 1; pass 1 or more");
      }
      if (asha.reduction_factor() < 2) {
        return absl::InvalidArgumentError("ASHA rule: reduction_factor " +
                                          std::to_string(asha.reduction_factor()) +
                                          " is below 2; pass 2 or more");
      }
      if (asha.max_epochs() != 0 && asha.max_epochs() <= asha.min_epochs()) {
        return absl::InvalidArgumentError(
            "ASHA rule: max_epochs " + std::to_string(asha.max_epochs()) +
            " must exceed min_epochs " + std::to_string(asha.min_epochs()) + ", or be 0");
      }
      return absl::OkStatus();
    }
    case v1::StoppingRule::RULE_NOT_SET:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

StopDecision DecideStop(const v1::StoppingRule& rule, int64_t trial_id, int32_t epoch,
                        const ValidationHistory& history) {
  switch (rule.rule_case()) {
    case v1::StoppingRule::kMedian:
      return DecideMedian(rule.median(), trial_id, epoch, history);
    case v1::StoppingRule::kAsha:
      return DecideAsha(rule.asha(), trial_id, epoch, history);
    case v1::StoppingRule::RULE_NOT_SET:
      return {};
  }
  return {};
}

}  // namespace sweep::server
