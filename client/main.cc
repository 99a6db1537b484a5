#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>

#include "client/cli.h"

namespace {

size_t StdoutTerminalWidth() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

}  // namespace

int main(int argc, char** argv) {
  sweep::client::CliOutput output{std::cout, std::cerr, isatty(STDOUT_FILENO) == 1,
                                  StdoutTerminalWidth};
  return sweep::client::RunCli(argc, argv, output);
}
