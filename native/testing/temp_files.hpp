// Temporary files and folders for the gtest suites: named after the process (parallel ctest runs don't collide) and,
// for folders, after the running test; a TempDir is removed with everything in it when it goes out of scope.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

namespace jitvision::testutil {

// <temp>/jitvision-<pid>-<name>.
inline std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("jitvision-" + std::to_string(::getpid()) + "-" + name);
}

// Writes `bytes` to `path` (binary) and returns the path.
inline std::filesystem::path write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// A fresh, empty folder temp_path(<tag>-<test name>), removed when the TempDir is destroyed.
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(temp_path(tag + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw; what cannot be removed stays in the temp folder
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the folder.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace jitvision::testutil
