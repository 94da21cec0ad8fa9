#include "run_folder.hpp"

#include <filesystem>
#include <system_error>

#include "jitvision/core/errors.hpp"

namespace jitvision::app {

namespace fs = std::filesystem;

constexpr int kMaxRuns = 9999;  // as runs.MAX_RUNS

std::string new_run_dir(const std::string& project, const std::string& name, bool exist_ok) {
  const fs::path base = fs::path(project) / name;
  std::error_code ec;
  fs::create_directories(exist_ok ? base : base.parent_path(), ec);
  if (ec || (exist_ok && !fs::is_directory(base))) {
    throw OutputError("cannot create the run folder " + base.string() + ": " +
                      (ec ? ec.message() : std::string("it is not a directory")));
  }
  if (exist_ok) return base.string();
  for (int n = 1; n <= kMaxRuns; ++n) {
    const fs::path candidate = n == 1 ? base : fs::path(project) / (name + std::to_string(n));
    if (fs::create_directory(candidate, ec)) return candidate.string();  // false: it exists already
    if (ec && fs::exists(candidate)) continue;                           // a file of that name: take the next number
    if (ec) throw OutputError("cannot create the run folder " + candidate.string() + ": " + ec.message());
  }
  throw OutputError(base.parent_path().string() + " already holds " + name + " .. " + name + std::to_string(kMaxRuns) +
                    ": pass another --name or --exist-ok");
}

}  // namespace jitvision::app
