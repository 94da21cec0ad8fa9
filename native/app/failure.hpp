#pragma once
// How the app reports trouble: one line on stderr per error or warning, and the one mapping from any exception
// (ours, LibTorch's, OpenCV's, nlohmann::json's, the standard library's, or anything else) to an exit code.
#include <exception>
#include <new>
#include <string>

#include <c10/util/Exception.h>

#include "jitvision/core/errors.hpp"

namespace jitvision::app {

// Prints a warning line: "jitvision: warning: MESSAGE".
void report_warning(const std::string& message);

// Prints the error as the one line users see: "jitvision: error: MESSAGE".
void report_error(const std::string& message);

// Flushes standard output and throws OutputError (exit 6) when anything written to it was lost (a full disk, a
// closed pipe): a command whose output is its result must not exit 0 without it.
void check_stdout();

// --verbose: model runtime errors keep LibTorch's whole text (the TorchScript traceback) instead of one line.
void set_verbose(bool verbose);

// A model's forward failed (LibTorch's TorchScript interpreter throws c10::Error or std::runtime_error): a
// ModelError (exit 3) saying `what` failed, with the line of LibTorch's text that says why ("RuntimeError: shape
// '[-1, 5]' is invalid ..."), or its whole text under --verbose.
ModelError model_run_error(const std::string& what, const std::exception& error);

// Runs `forward` (a model's forward pass and what comes with it); what LibTorch throws from it becomes
// model_run_error(what(), ...). jitvision's own errors and std::bad_alloc pass unchanged.
template <typename Forward, typename What>
auto run_model(Forward&& forward, What&& what) {
  try {
    return forward();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw model_run_error(what(), e);
  }
}

struct Failure {
  ExitCode code = ExitCode::Internal;
  std::string message;  // one line, without the "jitvision: error: " prefix
};

// What an exception means for the user: jitvision::Error keeps its code and message; every other type is an
// internal error (exit 1) whose message names the library it came from ("LibTorch: ...", "OpenCV: ...",
// "JSON: ...", "out of memory"). Never throws.
Failure failure_of(std::exception_ptr error) noexcept;

}  // namespace jitvision::app
