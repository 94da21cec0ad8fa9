#include "paths.hpp"

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace jitvision::app {

std::string bundled_model_path(const std::string& file_name) {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("JITVISION_MODELS_DIR"); dir && *dir)
    candidates.emplace_back(fs::path(dir) / file_name);
  std::error_code ec;
  const auto exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (!ec) {
    candidates.push_back(exe_dir / ".." / "models" / file_name);
    candidates.push_back(exe_dir / ".." / "share" / "jitvision" / "models" / file_name);
  }
  if (candidates.empty()) return file_name;  // no /proc: let the caller's error name the file
  for (const auto& c : candidates) {
    if (fs::exists(c, ec)) return c.lexically_normal().string();
  }
  return candidates.front().lexically_normal().string();
}

}  // namespace jitvision::app
