#pragma once
// The subcommands. Each registers its options on the CLI and runs from a filled options struct; main() owns the
// error-to-exit-code mapping.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace jitvision::app {

struct DigitsOptions {
  std::string model;
  std::string device = "auto";
  bool json = false;
  int batch = 64;
  std::vector<std::string> inputs;
};
CLI::App* add_digits_command(CLI::App& app, DigitsOptions& options);
int run_digits(const DigitsOptions& options);

// Prints the error as the one line users see: "jitvision: error: MESSAGE".
void report_error(const std::string& message);

}  // namespace jitvision::app
