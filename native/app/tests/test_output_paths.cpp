// check_output_paths: an output that would overwrite a source, the model or another output is refused before
// anything is opened; harmless outputs pass.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "jitvision/core/errors.hpp"
#include "output_paths.hpp"
#include "temp_files.hpp"

namespace jitvision::app {
namespace {

namespace fs = std::filesystem;

class OutputPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_ / "images" / "sub");
    touch("images/a.jpg");
    touch("images/b.png");
    touch("clip.mp4");
    touch("model.torchscript");
  }

  void touch(const std::string& name) const { std::ofstream(root_ / name) << "x"; }
  std::string at(const std::string& name) const { return (root_ / name).string(); }

  // The UsageError's message, or "" when the paths pass.
  std::string check(const std::vector<std::string>& sources, const OutputPaths& outputs) const {
    try {
      check_output_paths(sources, {at("model.torchscript")}, outputs);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  }

  testutil::TempDir dir_{"output-paths"};
  const fs::path root_ = dir_.path();
};

TEST_F(OutputPathsTest, HarmlessOutputsPass) {
  EXPECT_EQ(check({at("images"), at("clip.mp4")}, {at("out.json"), at("out.mp4"), at("saved")}), "");
  EXPECT_EQ(check({at("images/a.jpg")}, {"-", "", at("images/sub")}), "");  // a single file's folder is not read
  EXPECT_EQ(check({"0", "rtsp://camera/live"}, {at("out.json"), "", ""}), "");
}

TEST_F(OutputPathsTest, JsonOverTheSourceOrTheModelIsRefused) {
  const auto message = check({at("clip.mp4")}, {at("clip.mp4"), "", ""});
  EXPECT_NE(message.find("--json " + at("clip.mp4") + " is the source " + at("clip.mp4")), std::string::npos)
      << message;
  EXPECT_NE(check({at("clip.mp4")}, {at("model.torchscript"), "", ""}).find("is the model"), std::string::npos);
}

TEST_F(OutputPathsTest, FilesInsideSourceDirectoriesAndGlobsAreSources) {
  EXPECT_NE(check({at("images")}, {"", at("images/b.png"), ""}).find("is the source"), std::string::npos);
  EXPECT_NE(check({at("images/*.jpg")}, {at("images/a.jpg"), "", ""}).find("is the source"), std::string::npos);
}

TEST_F(OutputPathsTest, SymlinksAndHardLinksAreFollowed) {
  fs::create_symlink(at("clip.mp4"), at("link.mp4"));
  EXPECT_NE(check({at("clip.mp4")}, {"", at("link.mp4"), ""}).find("is the source"), std::string::npos);
  fs::create_hard_link(at("clip.mp4"), at("hard.mp4"));
  EXPECT_NE(check({at("hard.mp4")}, {"", at("clip.mp4"), ""}).find("is the source"), std::string::npos);
  EXPECT_NE(check({at("clip.mp4")}, {"", at("images/../clip.mp4"), ""}).find("is the source"), std::string::npos);
}

TEST_F(OutputPathsTest, TwoOutputsOnOnePathAreRefused) {
  const auto message = check({at("clip.mp4")}, {at("out.mp4"), at("out.mp4"), ""});
  EXPECT_NE(message.find("--save-video " + at("out.mp4") + " is also --json"), std::string::npos) << message;
}

TEST_F(OutputPathsTest, SaveDirInASourceDirectoryIsRefused) {
  EXPECT_NE(check({at("images")}, {"", "", at("images")}).find("is in the source directory"), std::string::npos);
  EXPECT_NE(check({at("images")}, {"", "", at("images/sub/new")}).find("is in the source directory"),
            std::string::npos);
  EXPECT_NE(check({at("images/*.png")}, {"", "", at("images")}).find("is in the source directory"), std::string::npos);
  EXPECT_NE(check({at("images/a.jpg")}, {"", "", at("images")}).find("is the folder of the source"), std::string::npos);
}

TEST_F(OutputPathsTest, AnExistingResultFileIsKeptUnlessOverwriteIsGiven) {
  touch("old.jsonl");
  touch("old.mp4");
  try {
    check_no_overwrite({at("old.jsonl"), "", ""}, false);
    ADD_FAILURE() << "an earlier run's JSON lines would be replaced";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "--json " + at("old.jsonl") + " exists (1 bytes); give --overwrite to replace it");
  }
  EXPECT_THROW(check_no_overwrite({"", at("old.mp4"), ""}, false), UsageError);
  EXPECT_NO_THROW(check_no_overwrite({at("old.jsonl"), at("old.mp4"), ""}, true));
  std::ofstream(root_ / "empty.jsonl").close();
  EXPECT_NO_THROW(check_no_overwrite({at("empty.jsonl"), at("new.mp4"), at("images")}, false));
  EXPECT_NO_THROW(check_no_overwrite({"/dev/null", "", ""}, false));
  EXPECT_NO_THROW(check_no_overwrite({"-", "", ""}, false));
}

}  // namespace
}  // namespace jitvision::app
