#pragma once
// Typed errors thrown by the library. Only main() turns them into an exit code and one line on stderr.
#include <stdexcept>
#include <string>

namespace jitvision {

// Process exit codes; documented in README.md ("Exit codes"). Keep the two in step.
enum class ExitCode : int {
  Ok = 0,
  Internal = 1,    // a bug or an unexpected library failure
  Usage = 2,       // bad command line
  Model = 3,       // model missing, unreadable, not TorchScript, or not fit for the command
  Device = 4,      // requested device unavailable
  Input = 5,       // an input could not be read (the others were still processed)
  Output = 6,      // an output could not be written
  SourceLost = 7,  // a live source dropped and did not come back within the reconnect budget
  Server = 8,      // the inference server (--server) is unreachable or its model is not ready
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

struct UsageError : Error {
  explicit UsageError(const std::string& m) : Error(ExitCode::Usage, m) {}
};
struct ModelError : Error {
  explicit ModelError(const std::string& m) : Error(ExitCode::Model, m) {}
};
struct DeviceError : Error {
  explicit DeviceError(const std::string& m) : Error(ExitCode::Device, m) {}
};
struct InputError : Error {
  explicit InputError(const std::string& m) : Error(ExitCode::Input, m) {}
};
struct OutputError : Error {
  explicit OutputError(const std::string& m) : Error(ExitCode::Output, m) {}
};
struct SourceLostError : Error {
  explicit SourceLostError(const std::string& m) : Error(ExitCode::SourceLost, m) {}
};
struct InferenceServerError : Error {
  explicit InferenceServerError(const std::string& m) : Error(ExitCode::Server, m) {}
};

}  // namespace jitvision
