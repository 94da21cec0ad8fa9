// --save-video with several sources: one video per source (a directory or a {name} pattern), named from the source and
// never replacing a source or an earlier run's file, each at its source's rate (measured for live sources); a plain
// file for several sources is a usage error.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/videoio.hpp>

#include "jitvision/core/errors.hpp"
#include "outputs.hpp"
#include "source_videos.hpp"

namespace jitvision::app {
namespace {

namespace fs = std::filesystem;

class SourceVideosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = fs::temp_directory_path() / ("jitvision-source-videos-" + std::to_string(::getpid()) + "-" + test);
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string at(const std::string& name) const { return (root_ / name).string(); }

  fs::path root_;
};

Result frame_of(int source_id, std::int64_t index, double timestamp, double source_fps) {
  Result r;
  r.frame.image = cv::Mat(48, 64, CV_8UC3, cv::Scalar(10 * source_id, 80, 160));
  r.frame.source_id = source_id;
  r.frame.index = index;
  r.frame.timestamp = timestamp;
  r.source_fps = source_fps;
  return r;
}

// (frames, fps) of a written video.
std::pair<int, double> read_back(const std::string& path) {
  cv::VideoCapture capture(path, cv::CAP_FFMPEG);
  EXPECT_TRUE(capture.isOpened()) << path;
  int frames = 0;
  cv::Mat image;
  while (capture.read(image)) ++frames;
  return {frames, capture.get(cv::CAP_PROP_FPS)};
}

TEST(SourceNames, SharedBaseNamesAreNumbered) {
  EXPECT_EQ(source_names({"http://a:1/stream.mjpg", "http://b:2/stream.mjpg", "/data/clip.mp4", "/other/clip.avi"}),
            (std::vector<std::string>{"stream", "stream_2", "clip", "clip_2"}));
}

TEST_F(SourceVideosTest, APlainFileForSeveralSourcesIsAUsageError) {
  try {
    SourceVideos videos(at("out.mp4"), {"a.mp4", "b.mp4"}, false);
    FAIL() << "one file accepted for two sources";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("{name}"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(at("out.mp4")));
}

TEST_F(SourceVideosTest, ADirectoryGetsOneVideoPerSourceAtEachSourcesRate) {
  const std::vector<std::string> sources{"/in/clip.mp4", "http://127.0.0.1:1/stream.mjpg", "/other/clip.avi"};
  SourceVideos videos(at("videos"), sources, false);  // no extension: a directory, created
  ASSERT_EQ(videos.paths(),
            (std::vector<std::string>{at("videos/clip.mp4"), at("videos/stream.mp4"), at("videos/clip_2.mp4")}));
  for (int i = 0; i < 12; ++i) {
    videos.write(frame_of(0, i, 1000.0 + i, 25.0).frame.image, frame_of(0, i, 1000.0 + i, 25.0));
    const Result live = frame_of(1, i, 1000.0 + 0.125 * i, 30.0);  // arrives at 8 frames/s; nominal 30
    videos.write(live.frame.image, live);
  }
  for (int i = 0; i < 3; ++i) {
    const Result other = frame_of(2, i, 1000.0, 12.0);
    videos.write(other.frame.image, other);
  }
  videos.close();
  EXPECT_EQ(read_back(at("videos/clip.mp4")), std::make_pair(12, 25.0));
  const auto [live_frames, live_fps] = read_back(at("videos/stream.mp4"));
  EXPECT_EQ(live_frames, 12);
  EXPECT_NEAR(live_fps, 8.0, 0.05);
  EXPECT_EQ(read_back(at("videos/clip_2.mp4")), std::make_pair(3, 12.0));
}

TEST_F(SourceVideosTest, APatternNeverReplacesAnEarlierRunsFileOrASource) {
  std::ofstream(at("cam.avi")) << "an earlier run";
  std::ofstream(at("clip.avi")) << "a source";
  const std::string pattern = at("{name}.avi");
  EXPECT_EQ(SourceVideos(pattern, {"rtsp://x/cam", at("clip.avi")}, false).paths(),
            (std::vector<std::string>{at("cam_2.avi"), at("clip_2.avi")}));
  // --overwrite replaces the earlier run's file, never a source
  EXPECT_EQ(SourceVideos(pattern, {"rtsp://x/cam", at("clip.avi")}, true).paths(),
            (std::vector<std::string>{at("cam.avi"), at("clip_2.avi")}));
}

TEST_F(SourceVideosTest, AFewLiveFramesFallBackToTheNominalRate) {
  SourceVideos videos(at("one.avi"), {"http://127.0.0.1:1/stream.mjpg"}, false);
  for (int i = 0; i < 2; ++i) {
    const Result r = frame_of(0, i, 1000.0, 15.0);  // two frames with one capture time: no rate to measure
    videos.write(r.frame.image, r);
  }
  videos.close();
  EXPECT_EQ(read_back(at("one.avi")), std::make_pair(2, 15.0));
}

}  // namespace
}  // namespace jitvision::app
