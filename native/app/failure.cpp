#include "failure.hpp"

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

}  // namespace

void report_error(const std::string& message) { std::cerr << "jitvision: error: " << message << std::endl; }

void check_stdout() {
  errno = 0;
  std::cout.flush();
  if (!std::cout) {
    const int error = errno;
    throw OutputError(std::string("cannot write to standard output") +
                      (error != 0 ? std::string(": ") + std::strerror(error) : std::string()));
  }
}
void report_warning(const std::string& message) { std::cerr << "jitvision: warning: " << message << std::endl; }

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
