// The official detector's flags resolved by the app: --classes by index or name, --device spellings, run folders.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include "detect_flags.hpp"
#include "jitvision/core/errors.hpp"
#include "run_folder.hpp"
#include "temp_files.hpp"

namespace fs = std::filesystem;
using namespace jitvision;
using namespace jitvision::app;

TEST(DetectFlags, ClassesByIndexOrName) {
  const std::vector<std::string> names{"person", "bicycle", "car"};
  EXPECT_EQ(resolve_classes({"2", "person", "bicycle"}, names), (std::vector<int>{2, 0, 1}));
  EXPECT_THROW(resolve_classes({"3"}, names), UsageError);
  EXPECT_THROW(resolve_classes({"truck"}, names), UsageError);
  EXPECT_THROW(resolve_classes({"-1"}, names), UsageError);
}

TEST(DetectFlags, DeviceSpellings) {
  for (const char* ok : {"auto", "cpu", "cuda", "cuda:0", "cuda:12", "0", "3"}) EXPECT_TRUE(is_device_flag(ok)) << ok;
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "0,1", "-1", "CPU", ""}) EXPECT_FALSE(is_device_flag(bad)) << bad;
  EXPECT_EQ(resolve_device_flag("cpu"), torch::Device(torch::kCPU));
}

TEST(RunFolder, NumberedUnlessExistOk) {
  const testutil::TempDir runs("runs");
  const fs::path project = runs.path() / "project";
  EXPECT_EQ(new_run_dir(project.string(), "exp", false), (project / "exp").string());
  EXPECT_EQ(new_run_dir(project.string(), "exp", false), (project / "exp2").string());
  std::ofstream(project / "exp3") << "a file, not a folder";
  EXPECT_EQ(new_run_dir(project.string(), "exp", false), (project / "exp4").string());
  EXPECT_EQ(new_run_dir(project.string(), "exp", true), (project / "exp").string());
  fs::remove_all(project / "exp2");
  EXPECT_EQ(new_run_dir(project.string(), "exp", false), (project / "exp2").string());  // gaps are reused
  EXPECT_THROW(new_run_dir((project / "exp3").string(), "exp", false), OutputError);    // under a file
}
