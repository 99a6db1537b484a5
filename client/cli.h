#ifndef SWEEP_CLIENT_CLI_H_
#define SWEEP_CLIENT_CLI_H_

#include <cstddef>
#include <functional>
#include <ostream>

namespace sweep::client {

// Output streams of the command, and the terminal behind `out`.
struct CliOutput {
  std::ostream& out;
  std::ostream& err;
  // True when `out` is a terminal; `sweep watch` then redraws its block in place.
  bool out_is_terminal = false;
  // Returns the terminal's width in columns, or 0 when unknown. Called before each redraw
  // so that a resized window takes effect. May be empty.
  std::function<size_t()> terminal_width;
};

// Parses the `sweep` command line (argv[0] is the program name), runs the command and
// returns the process exit code from client/exit_code.h. Errors go to `output.err` as
// "sweep: <message>".
int RunCli(int argc, const char* const* argv, const CliOutput& output);

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_CLI_H_
