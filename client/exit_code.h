#ifndef SWEEP_CLIENT_EXIT_CODE_H_
#define SWEEP_CLIENT_EXIT_CODE_H_

#include "absl/status/status.h"

namespace sweep::client {

// Exit codes of the `sweep` command; docs/cli.md lists them for users.
enum ExitCode : int {
  kExitSuccess = 0,
  // Any error without a more specific code below.
  kExitOtherError = 1,
  // Usage errors, unreadable or invalid grid files and INVALID_ARGUMENT replies.
  kExitInvalidInput = 2,
  // NOT_FOUND replies: an unknown sweep or trial id, or no trial that qualifies.
  kExitNotFound = 3,
  // The coordinator could not be reached or did not reply in time (UNAVAILABLE,
  // DEADLINE_EXCEEDED).
  kExitUnavailable = 4,
  // `sweep watch` saw the sweep end FAILED or CANCELLED.
  kExitSweepNotCompleted = 5,
  // The coordinator rejected the call because the client token was missing or wrong
  // (UNAUTHENTICATED).
  kExitUnauthenticated = 6,
};

// Maps a status to the exit code from which a script can decide what to do next. OK maps
// to 0.
ExitCode ExitCodeForStatus(const absl::Status& status);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_EXIT_CODE_H_
