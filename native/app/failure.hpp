#pragma once
// How the app reports trouble: one line on stderr per error or warning, and the one mapping from any exception
// (ours, LibTorch's, OpenCV's, nlohmann::json's, the standard library's, or anything else) to an exit code.
#include <exception>
#include <string>

#include "jitvision/core/errors.hpp"

namespace jitvision::app {

// Prints a warning line: "jitvision: warning: MESSAGE".
void report_warning(const std::string& message);

// Prints the error as the one line users see: "jitvision: error: MESSAGE".
void report_error(const std::string& message);

// Flushes standard output and throws OutputError (exit 6) when anything written to it was lost (a full disk, a
// closed pipe): a command whose output is its result must not exit 0 without it.
void check_stdout();

struct Failure {
  ExitCode code = ExitCode::Internal;
  std::string message;  // one line, without the "jitvision: error: " prefix
};

// What an exception means for the user: jitvision::Error keeps its code and message; every other type is an
// internal error (exit 1) whose message names the library it came from ("LibTorch: ...", "OpenCV: ...",
// "JSON: ...", "out of memory"). Never throws.
Failure failure_of(std::exception_ptr error) noexcept;

}  // namespace jitvision::app
