#include "failure.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <new>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace jitvision::app {
namespace {

// Messages of other libraries may span several lines (OpenCV's do, LibTorch's may): the error line stays one line.
std::string one_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (auto& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

// The line of a TorchScript error that says what went wrong: the last "SomethingError: ..." line (after the
// traceback), else the first line.
std::string reason_line(const std::string& text) {
  std::string first, reason;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find('\n', start), text.size());
    const std::string line = text.substr(start, end - start);
    if (first.empty() && line.find_first_not_of(' ') != std::string::npos) first = line;
    const auto colon = line.find("Error: ");
    if (colon != std::string::npos && colon > 0 && line.find(' ') > colon) reason = line;
    start = end + 1;
  }
  return one_line(reason.empty() ? first : reason);
}

std::atomic<bool> g_verbose{false};

}  // namespace

void set_verbose(bool verbose) { g_verbose = verbose; }

ModelError model_run_error(const std::string& what, const std::exception& error) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
  const std::string text = torch_error ? torch_error->what_without_backtrace() : error.what();
  return ModelError(what + ": " + (g_verbose ? text : reason_line(text)));
}

void report_error(const std::string& message) { std::cerr << "jitvision: error: " << message << std::endl; }
void report_warning(const std::string& message) { std::cerr << "jitvision: warning: " << message << std::endl; }

void check_stdout() {
  errno = 0;
  std::cout.flush();
  if (!std::cout) {
    const int error = errno;
    throw OutputError(std::string("cannot write to standard output") +
                      (error != 0 ? std::string(": ") + std::strerror(error) : std::string()));
  }
}

Failure failure_of(std::exception_ptr error) noexcept {
  try {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      return {e.code(), one_line(e.what())};
    } catch (const c10::Error& e) {
      return {ExitCode::Internal, "LibTorch: " + one_line(e.what_without_backtrace())};
    } catch (const cv::Exception& e) {
      return {ExitCode::Internal, "OpenCV: " + one_line(e.err) + (e.func.empty() ? "" : " (in " + e.func + ")")};
    } catch (const nlohmann::json::exception& e) {
      return {ExitCode::Internal, "JSON: " + one_line(e.what())};
    } catch (const std::bad_alloc&) {
      return {ExitCode::Internal, "out of memory"};
    } catch (const std::exception& e) {
      return {ExitCode::Internal, one_line(e.what())};
    } catch (...) {
      return {ExitCode::Internal, "unknown exception"};
    }
  } catch (...) {  // building the message itself failed (out of memory)
    return {ExitCode::Internal, {}};
  }
}

}  // namespace jitvision::app
