// The OpenCV io layer: what each --source names, image lists that survive bad files, video files read back frame for
// frame, sinks that fail early and clearly, and live streams that reconnect and give up within their bound (served
// by a loopback MJPEG-over-HTTP server in this file).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_file.hpp"
#include "jitvision/io/sinks.hpp"
#include "jitvision/io/sources.hpp"

namespace jitvision::io {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

class QuietOpenCv : public ::testing::Environment {
 public:
  void SetUp() override { quiet_opencv_logging(); }
};
const auto* const kQuiet = ::testing::AddGlobalTestEnvironment(new QuietOpenCv);

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

cv::Mat moving_square(int width, int height, int step) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(40, 90, 160));
  const int x = (step * 7) % std::max(1, width - 20);
  cv::rectangle(image, cv::Rect(x, height / 3, 20, 20), cv::Scalar(250, 250, 250), cv::FILLED);
  return image;
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("jitvision_io_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// --- classify_source ----------------------------------------------------------------------------------------------

TEST(ClassifySource, NamesEveryKindWithoutOpeningIt) {
  EXPECT_EQ(classify_source("0"), SourceKind::Camera);
  EXPECT_EQ(classify_source("9"), SourceKind::Camera);
  EXPECT_EQ(classify_source("/dev/video2"), SourceKind::Camera);
  EXPECT_EQ(classify_source("http://127.0.0.1:8080/stream.mjpg"), SourceKind::NetworkStream);
  EXPECT_EQ(classify_source("HTTPS://example.com/live"), SourceKind::NetworkStream);
  EXPECT_EQ(classify_source("rtsp://user:secret@cam.local:554/h264"), SourceKind::NetworkStream);
  EXPECT_EQ(classify_source("rtmp://server/app/key"), SourceKind::NetworkStream);
  EXPECT_EQ(classify_source("udp://@:1234"), SourceKind::NetworkStream);
  EXPECT_EQ(classify_source("tcp://10.0.0.2:5000"), SourceKind::NetworkStream);
  EXPECT_EQ(classify_source("videotestsrc ! videoconvert ! appsink"), SourceKind::GStreamerPipeline);
  EXPECT_EQ(classify_source("clip.mp4"), SourceKind::VideoFile);
  EXPECT_EQ(classify_source("dir/CLIP.MKV"), SourceKind::VideoFile);
  EXPECT_EQ(classify_source("anim.gif"), SourceKind::VideoFile);
  EXPECT_EQ(classify_source("a.webm"), SourceKind::VideoFile);
  EXPECT_EQ(classify_source("photo.jpg"), SourceKind::ImageFiles);
  EXPECT_EQ(classify_source("shots/*.png"), SourceKind::ImageFiles);
  EXPECT_EQ(classify_source(fs::temp_directory_path().string()), SourceKind::ImageFiles);
  EXPECT_EQ(classify_source("missing-without-extension"), SourceKind::ImageFiles);
  EXPECT_EQ(classify_source("123"), SourceKind::ImageFiles);  // not a plausible camera index
}

class ClassifyFiles : public TempDir {};

TEST_F(ClassifyFiles, UnknownExtensionIsDecidedByContent) {
  cv::imwrite(path("photo.png"), moving_square(32, 32, 0));
  fs::rename(path("photo.png"), path("photo.dat"));
  EXPECT_EQ(classify_source(path("photo.dat")), SourceKind::ImageFiles);
  std::ofstream(path("notes.dat")) << "not an image";
  EXPECT_EQ(classify_source(path("notes.dat")), SourceKind::VideoFile);
  try {
    open_source(path("notes.dat"), {});
    FAIL() << "a text file opened as a source";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("neither an image nor a video"), std::string::npos) << e.what();
  }
}

// --- image lists --------------------------------------------------------------------------------------------------

class ImageList : public TempDir {};

TEST_F(ImageList, BadFileInTheMiddleThrowsOnceAndTheRestIsRead) {
  cv::imwrite(path("a.png"), moving_square(40, 30, 1));
  std::ofstream(path("b.png")) << "this is not an image";
  cv::imwrite(path("c.png"), moving_square(50, 20, 2));
  auto source = open_source(dir_.string(), {});
  EXPECT_FALSE(source->live());

  auto first = source->next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->source, path("a.png"));
  EXPECT_EQ(first->index, 0);
  EXPECT_EQ(first->image.size(), cv::Size(40, 30));
  try {
    source->next();
    FAIL() << "b.png is not an image";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("b.png"), std::string::npos) << e.what();
  }
  auto third = source->next();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->source, path("c.png"));
  EXPECT_EQ(third->image.size(), cv::Size(50, 20));
  EXPECT_FALSE(source->next());
}

TEST_F(ImageList, MissingFileAndEmptyGlobAreInputErrorsFromNext) {
  auto missing = open_source(path("missing.jpg"), {});
  EXPECT_THROW(missing->next(), InputError);
  EXPECT_FALSE(missing->next());
  auto glob = open_source(path("*.png"), {});
  EXPECT_THROW(glob->next(), InputError);
  EXPECT_FALSE(glob->next());
}

// Reading a FIFO or a character device would block or never end: whatever the name, it is refused unread.
TEST_F(ImageList, NonRegularFilesAreInputErrorsWithoutBeingRead) {
  ASSERT_EQ(::mkfifo(path("f.jpg").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(path("pipe").c_str(), 0600), 0);
  fs::create_symlink(path("f.jpg"), path("link.png"));
  for (const auto& spec : {path("f.jpg"), path("pipe"), path("link.png"), path("*.jpg"), std::string("/dev/zero")}) {
    auto source = open_source(spec, {});
    try {
      source->next();
      ADD_FAILURE() << spec << " was read";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(source->next());
  }
}

TEST_F(ImageList, VideosInADirectoryOrGlobAreReadFrameByFrameInNameOrder) {
  cv::imwrite(path("a.png"), moving_square(40, 30, 1));
  {
    VideoFileSink sink(path("b.avi"), 25);
    for (int i = 0; i < 3; ++i) sink.write(moving_square(64, 48, i));
  }
  cv::imwrite(path("c.png"), moving_square(50, 20, 2));
  for (const auto& spec : {dir_.string(), path("*")}) {
    auto source = open_source(spec, {});
    std::vector<std::pair<std::string, std::int64_t>> seen;
    while (auto frame = source->next()) seen.emplace_back(fs::path(frame->source).filename(), frame->index);
    const std::vector<std::pair<std::string, std::int64_t>> expected{
        {"a.png", 0}, {"b.avi", 0}, {"b.avi", 1}, {"b.avi", 2}, {"c.png", 0}};
    EXPECT_EQ(seen, expected) << spec;
  }
}

// --- video files --------------------------------------------------------------------------------------------------

class VideoFiles : public TempDir {
 protected:
  void round_trip(const std::string& name) {
    const int frames = 24;
    const cv::Size size(96, 64);
    {
      VideoFileSink sink(path(name), 0);  // fps unknown: 30
      for (int i = 0; i < frames; ++i) sink.write(moving_square(size.width, size.height, i));
      EXPECT_EQ(sink.frames_written(), frames);
    }
    EXPECT_EQ(classify_source(path(name)), SourceKind::VideoFile);
    auto source = open_source(path(name), {});
    EXPECT_FALSE(source->live());
    EXPECT_NEAR(source->fps(), 30.0, 0.5);
    std::int64_t count = 0;
    while (auto frame = source->next()) {
      EXPECT_EQ(frame->index, count);
      EXPECT_EQ(frame->source, path(name));
      EXPECT_EQ(frame->image.size(), size);
      EXPECT_EQ(frame->image.type(), CV_8UC3);
      ++count;
    }
    EXPECT_EQ(count, frames) << name;
  }
};

TEST_F(VideoFiles, WrittenVideoReadsBackWithEveryFrame) {
  round_trip("clip.avi");
  round_trip("clip.mp4");
  round_trip("clip.mkv");
}

TEST_F(VideoFiles, StopEndsAVideoEarly) {
  {
    VideoFileSink sink(path("clip.avi"), 25);
    for (int i = 0; i < 5; ++i) sink.write(moving_square(32, 32, i));
  }
  auto source = open_source(path("clip.avi"), {});
  ASSERT_TRUE(source->next());
  source->stop();
  EXPECT_FALSE(source->next());
}

TEST_F(VideoFiles, FramesCarryTheirPositionAndTimeAndStatsCountThem) {
  {
    VideoFileSink sink(path("clip.avi"), 10);
    for (int i = 0; i < 6; ++i) sink.write(moving_square(32, 32, i));
  }
  auto source = open_source(path("clip.avi"), {});
  const double before = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  int count = 0;
  while (const auto frame = source->next()) {
    EXPECT_NEAR(frame->position_ms, count * 100.0, 1.0) << "frame " << count;
    EXPECT_GE(frame->timestamp, before - 1);
    EXPECT_LT(frame->timestamp, before + 60);
    ++count;
  }
  EXPECT_EQ(count, 6);
  const SourceStats stats = source->stats();
  EXPECT_EQ(stats.read, 6);
  EXPECT_EQ(stats.dropped, 0);
  EXPECT_EQ(stats.reconnects, 0);
  EXPECT_NEAR(stats.fps, 10.0, 0.01);
}

TEST_F(VideoFiles, MissingAndCorruptVideosAreInputErrors) {
  EXPECT_THROW(open_source(path("missing.mp4"), {}), InputError);
  std::ofstream(path("broken.mp4")) << "no video here";
  EXPECT_THROW(open_source(path("broken.mp4"), {}), InputError);
}

// --- sinks --------------------------------------------------------------------------------------------------------

class Sinks : public TempDir {};

TEST_F(Sinks, VideoSinkClosesToAPlayableFileAndScalesOddFrames) {
  VideoFileSink sink(path("out.avi"), 10);
  sink.write(moving_square(64, 48, 0));
  sink.write(moving_square(100, 100, 1));  // another source's size: scaled, not dropped
  sink.close();
  sink.close();
  EXPECT_THROW(sink.write(moving_square(64, 48, 2)), OutputError);
  auto source = open_source(path("out.avi"), {});
  int count = 0;
  while (auto frame = source->next()) {
    EXPECT_EQ(frame->image.size(), cv::Size(64, 48));
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST_F(Sinks, VideoSinkRejectsUnknownExtensionAndMissingDirectory) {
  EXPECT_THROW(VideoFileSink(path("out.xyz"), 30), OutputError);
  EXPECT_THROW(VideoFileSink(path("no/such/dir/out.mp4"), 30), OutputError);
  EXPECT_THROW(VideoFileSink("/proc/out.mp4", 30), OutputError);
}

TEST_F(Sinks, JsonLinesAreWholeAndFlushedAsWritten) {
  JsonLinesSink sink(path("out.jsonl"));
  sink.write_line(R"({"frame": 0})");
  sink.write_line(R"({"frame": 1})");
  // Read while the sink is still open: every line must already be on disk.
  std::ifstream in(path("out.jsonl"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "{\"frame\": 0}\n{\"frame\": 1}\n");
}

TEST_F(Sinks, JsonLinesToAnUnwritablePathIsAnOutputError) {
  EXPECT_THROW(JsonLinesSink(path("no/such/dir/out.jsonl")), OutputError);
}

TEST_F(Sinks, ImageDirIsCreatedAndNamesFramesBySource) {
  ImageDirSink sink(path("saved/nested"));
  const cv::Mat image = moving_square(32, 24, 0);
  sink.write(image, "/data/photos/bus.jpg", 0, true);
  sink.write(image, "/videos/clip.mp4", 12, false);
  sink.write(image, "http://127.0.0.1:8080/stream.mjpg", 3, false);
  sink.write(image, "videotestsrc ! videoconvert ! appsink", 0, false);
  EXPECT_TRUE(fs::exists(path("saved/nested/bus.jpg")));
  EXPECT_TRUE(fs::exists(path("saved/nested/clip_000012.jpg")));
  EXPECT_TRUE(fs::exists(path("saved/nested/stream_000003.jpg")));
  EXPECT_TRUE(fs::exists(path("saved/nested/videotestsrc_videoconvert_appsink_000000.jpg")));
  EXPECT_EQ(cv::imread(path("saved/nested/bus.jpg")).size(), image.size());
}

TEST_F(Sinks, SameNamesFromDifferentSourcesGetDistinctFiles) {
  ImageDirSink sink(path("saved"));
  const cv::Mat first = moving_square(32, 24, 0);
  const cv::Mat second = moving_square(32, 24, 5);
  sink.write(first, "/one/a.jpg", 0, true);
  sink.write(second, "/two/a.jpg", 0, true);
  sink.write(first, "/one/clip.mp4", 1, false);
  sink.write(second, "/two/clip.mp4", 1, false);
  sink.write(second, "/one/clip.mp4", 2, false);  // a source keeps its name
  const auto diff = [&](const std::string& name, const cv::Mat& expected) {
    return cv::norm(cv::imread(path("saved/" + name)), expected, cv::NORM_INF);
  };
  EXPECT_LT(diff("a.jpg", first), diff("a.jpg", second));
  EXPECT_LT(diff("a_2.jpg", second), diff("a_2.jpg", first));
  EXPECT_LT(diff("clip_000001.jpg", first), diff("clip_000001.jpg", second));
  EXPECT_LT(diff("clip_2_000001.jpg", second), diff("clip_2_000001.jpg", first));
  EXPECT_TRUE(fs::exists(path("saved/clip_000002.jpg")));
  EXPECT_FALSE(fs::exists(path("saved/clip_2_000002.jpg")));
}

TEST_F(Sinks, AnEarlierRunsImagesAreKeptUnlessOverwriting) {
  const cv::Mat earlier = moving_square(32, 24, 0), later = moving_square(32, 24, 5);
  const auto is = [&](const std::string& name, const cv::Mat& expected) {
    const cv::Mat saved = cv::imread(path("saved/" + name));
    const cv::Mat other = &expected == &earlier ? later : earlier;
    return !saved.empty() && cv::norm(saved, expected, cv::NORM_INF) < cv::norm(saved, other, cv::NORM_INF);
  };
  {
    ImageDirSink first_run(path("saved"));
    first_run.write(earlier, "/in/a.jpg", 0, true);
    first_run.write(earlier, "/in/clip.mp4", 0, false);
  }
  ImageDirSink second_run(path("saved"));
  second_run.write(later, "/in/a.jpg", 0, true);
  second_run.write(later, "/in/clip.mp4", 0, false);
  EXPECT_TRUE(is("a.jpg", earlier));
  EXPECT_TRUE(is("a_2.jpg", later));
  EXPECT_TRUE(is("clip_000000.jpg", earlier));
  EXPECT_TRUE(is("clip_2_000000.jpg", later));
  ImageDirSink overwriting(path("saved"), true);
  overwriting.write(later, "/in/a.jpg", 0, true);
  EXPECT_TRUE(is("a.jpg", later));
  EXPECT_FALSE(fs::exists(path("saved/a_3.jpg")));
}

TEST(OutputNames, SourceStemsAreSanitisedAndNeverEmpty) {
  EXPECT_EQ(source_stem("rtsp://user:***@cam.local:554/live"), "live");
  EXPECT_EQ(source_stem("http://127.0.0.1:8080/stream.mjpg"), "stream");
  EXPECT_EQ(source_stem("/data/clip.mp4"), "clip");
  EXPECT_EQ(source_stem("/data/shots/"), "shots");
  EXPECT_EQ(source_stem("/data/shots/*.jpg"), "shots");
  EXPECT_EQ(source_stem("0"), "0");
  EXPECT_EQ(source_stem("videotestsrc num-buffers=30 ! videoconvert ! appsink"),
            "videotestsrc_num-buffers_30_videoconvert");
  EXPECT_EQ(source_stem("///"), "frame");
}

TEST(OutputNames, EverySourceGetsItsOwnNameAndKeepsIt) {
  std::set<std::string> on_disk{"cam_2.mp4"};
  UniqueNames names([&](const std::string& name) { return on_disk.count(name) != 0; });
  EXPECT_EQ(names.name_for("a", "cam", "", ".mp4"), "cam");
  EXPECT_EQ(names.name_for("b", "cam", "", ".mp4"), "cam_3");  // cam_2.mp4 is an earlier run's
  EXPECT_EQ(names.name_for("c", "other", "", ".mp4"), "other");
  EXPECT_EQ(names.name_for("a", "cam", "", ".mp4"), "cam");
  EXPECT_EQ(names.name_for("d", "a", ".jpg"), "a.jpg");
  EXPECT_EQ(names.name_for("e", "a", ".jpg"), "a_2.jpg");
  EXPECT_EQ(names.name_for("f", "frame.001"), "frame.001");
  EXPECT_EQ(names.name_for("g", "frame.001"), "frame.001_2");  // a stem's dots are no extension
}

TEST(Mosaic, TilesEverySourceLetterboxedInAGrid) {
  const cv::Mat red(100, 200, CV_8UC3, cv::Scalar(0, 0, 255));   // 2:1, letterboxed top and bottom
  const cv::Mat blue(300, 100, CV_8UC3, cv::Scalar(255, 0, 0));  // 1:3, letterboxed left and right
  const cv::Mat green(90, 160, CV_8UC3, cv::Scalar(0, 255, 0));  // the tile's own shape: fills it
  const cv::Size tile(160, 90);
  const cv::Mat mosaic = tile_mosaic({red, blue, green, cv::Mat()}, {"", "", "", ""}, tile);
  ASSERT_EQ(mosaic.size(), cv::Size(2 * 160, 2 * 90));  // 4 sources: 2 x 2
  const auto at = [&](int x, int y) { return mosaic.at<cv::Vec3b>(y, x); };
  const cv::Vec3b grey(114, 114, 114), black(0, 0, 0);
  // red: 160x80 centred in 160x90 -> 5 px bars above and below
  EXPECT_EQ(at(80, 2), grey);
  EXPECT_EQ(at(80, 45), cv::Vec3b(0, 0, 255));
  EXPECT_EQ(at(80, 87), grey);
  // blue: 30x90 centred in the second cell (x 160..319) -> columns 225..254
  EXPECT_EQ(at(160 + 10, 45), grey);
  EXPECT_EQ(at(160 + 80, 45), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(at(160 + 150, 45), grey);
  // green fills the third cell (second row, first column); the fourth has no frame yet: black
  EXPECT_EQ(at(1, 91), cv::Vec3b(0, 255, 0));
  EXPECT_EQ(at(158, 178), cv::Vec3b(0, 255, 0));
  EXPECT_EQ(at(240, 135), black);
  // 3 sources still take a 2 x 2 grid; 5 take 3 x 2
  EXPECT_EQ(tile_mosaic({red, blue, green}, {}, tile).size(), cv::Size(320, 180));
  EXPECT_EQ(tile_mosaic({red, red, red, red, red}, {}, tile).size(), cv::Size(480, 180));
}

TEST(Mosaic, LabelsNameEachTile) {
  const cv::Mat grey_frame(90, 160, CV_8UC3, cv::Scalar(114, 114, 114));
  const cv::Mat labelled = tile_mosaic({grey_frame, grey_frame}, {"cam1", ""}, {160, 90});
  const auto changed = [&](int x0) { return cv::countNonZero(labelled(cv::Rect(x0, 0, 80, 30)).reshape(1) != 114); };
  EXPECT_GT(changed(0), 100) << "no label on the first tile";
  EXPECT_EQ(changed(160), 0) << "an empty label drew something";
}

TEST_F(Sinks, WriteProbeFollowsNoPlantedLinkAndLeavesNothing) {
  fs::create_directories(path("out"));
  // A link at the old predictable probe name must not be followed (and no probe file may be left behind).
  fs::create_symlink(path("victim"), path("out/.jitvision-write-test-" + std::to_string(::getpid())));
  VideoFileSink sink(path("out/video.mp4"), 30);
  ImageDirSink images(path("out"));
  EXPECT_FALSE(fs::exists(path("victim")));
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(path("out"))) ++entries;
  EXPECT_EQ(entries, 1);  // only the planted link
}

TEST_F(Sinks, UnwritableImageDirFailsAtConstruction) {
  EXPECT_THROW(ImageDirSink("/proc/forbidden"), OutputError);
  std::ofstream(path("a-file")) << "x";
  try {
    ImageDirSink sink(path("a-file"));
    FAIL() << "a file accepted as an image directory";
  } catch (const OutputError& e) {
    EXPECT_NE(std::string(e.what()).find("a-file"), std::string::npos) << e.what();
  }
}

TEST(Drawing, BoxesAndLabelsUseTheClassColour) {
  cv::Mat image(240, 320, CV_8UC3, cv::Scalar(0, 0, 0));
  const Detections detections{{20, 60, 120, 200, 0.87f, 0}, {150, 10, 300, 100, 0.5f, 5}};
  draw_detections(image, detections, {"person", "bicycle", "car", "motorcycle", "airplane", "bus"}, "12.3 FPS");
  const auto count = [&](const cv::Scalar& colour) {
    cv::Mat mask;
    cv::inRange(image, colour, colour, mask);
    return cv::countNonZero(mask);
  };
  EXPECT_NE(class_colour(0), class_colour(5));
  EXPECT_GT(count(class_colour(0)), 200);  // box outline and filled label
  EXPECT_GT(count(class_colour(5)), 200);
  // The box outline is exactly the class colour on every side.
  const cv::Scalar person = class_colour(0);
  const auto at = [&](int x, int y) { return cv::Scalar(image.at<cv::Vec3b>(y, x)); };
  EXPECT_EQ(at(20, 150), person);
  EXPECT_EQ(at(120, 150), person);
  EXPECT_EQ(at(70, 200), person);
  // Status text sits top-left on a black box, in white.
  cv::Mat status = image(cv::Rect(0, 0, 60, 16));
  cv::Mat white;
  cv::inRange(status, cv::Scalar(200, 200, 200), cv::Scalar(255, 255, 255), white);
  EXPECT_GT(cv::countNonZero(white), 10);
}

TEST(Display, NoDisplayMeansNoWindowAndAClearError) {
  const char* saved = std::getenv("DISPLAY");
  const std::string saved_display = saved ? saved : "";
  ::unsetenv("DISPLAY");
  ::unsetenv("WAYLAND_DISPLAY");
  EXPECT_FALSE(display_available());
  ::setenv("DISPLAY", ":97", 1);  // no X server there
  EXPECT_FALSE(display_available());
  try {
    Window window("test");
    FAIL() << "a window opened without a display";
  } catch (const OutputError& e) {
    EXPECT_NE(std::string(e.what()).find("display"), std::string::npos) << e.what();
  }
  if (saved) {
    ::setenv("DISPLAY", saved_display.c_str(), 1);
  } else {
    ::unsetenv("DISPLAY");
  }
}

TEST(CaptureBackends, CameraFrameWaitFollowsTheReadTimeoutUnlessSetAlready) {
  const char* saved = std::getenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT");
  SourceOptions options;
  options.read_timeout_ms = 2500;
  configure_capture_backends(options);
  EXPECT_STREQ(std::getenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"), "3");
  options.read_timeout_ms = 9000;
  configure_capture_backends(options);  // the user's (or an earlier) setting wins
  EXPECT_STREQ(std::getenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"), "3");
  if (saved) {
    ::setenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", saved_value.c_str(), 1);
  } else {
    ::unsetenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT");
  }
}

// --- live sources that cannot be opened ---------------------------------------------------------------------------

template <typename Open>
std::string input_error_of(Open open, double max_seconds) {
  const auto start = Clock::now();
  try {
    open();
  } catch (const InputError& e) {
    EXPECT_LT(seconds_since(start), max_seconds);
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

// A live source opens in the background: open_source() returns at once, and the first next() tells that the source
// never opened (once: then it has ended).
std::string open_error_of(const std::string& spec, const SourceOptions& options, double max_seconds) {
  const auto start = Clock::now();
  auto source = open_source(spec, options);
  EXPECT_LT(seconds_since(start), 0.5) << "open_source() waited for the open";
  const auto message = input_error_of([&] { source->next(); }, max_seconds);
  EXPECT_FALSE(source->next());
  return message;
}

// Collects SourceOptions::notice lines (called from grabber threads).
struct Notices {
  std::mutex mutex;
  std::vector<std::string> lines;
  void attach(SourceOptions& options) {
    options.notice = [this](const std::string& line) {
      std::lock_guard lock(mutex);
      lines.push_back(line);
    };
  }
  int count(const std::string& text) {
    std::lock_guard lock(mutex);
    return static_cast<int>(std::count_if(lines.begin(), lines.end(),
                                          [&](const std::string& l) { return l.find(text) != std::string::npos; }));
  }
};

TEST(LiveOpen, MissingCameraWithoutRetriesIsAnInputErrorAtOnce) {
  SourceOptions options;
  options.reconnect = 0;
  const auto message = open_error_of("7", options, 2.0);
  EXPECT_NE(message.find("camera 7 cannot be opened"), std::string::npos) << message;
}

TEST(LiveOpen, FirstOpenIsRetriedOnTheReconnectBudgetWithOneLineEach) {
  SourceOptions options;
  options.open_timeout_ms = 1000;
  options.reconnect = 2;
  options.backoff_initial_s = 0.2;
  Notices notices;
  notices.attach(options);
  const auto start = Clock::now();
  const auto message = open_error_of("http://127.0.0.1:1/x.mjpg", options, 4.0);
  EXPECT_GE(seconds_since(start), 0.2 + 0.4) << "the back-offs were not waited";
  EXPECT_NE(message.find("http://127.0.0.1:1/x.mjpg"), std::string::npos) << message;
  EXPECT_NE(message.find("(3 attempts)"), std::string::npos) << message;
  EXPECT_EQ(notices.count("cannot be opened yet; retrying in"), 2);
  EXPECT_EQ(notices.count("(retry 2 of 2)"), 1);
}

TEST(LiveOpen, StopEndsTheFirstOpensRetriesAtOnce) {
  SourceOptions options;
  options.open_timeout_ms = 500;
  options.reconnect = 5;
  options.backoff_initial_s = 2.0;
  auto source = open_source("http://127.0.0.1:1/x.mjpg", options);
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    source->stop();
  });
  const auto start = Clock::now();
  EXPECT_FALSE(source->next());  // a stop is no error
  stopper.join();
  EXPECT_LT(seconds_since(start), 1.0);
  const auto destroying = Clock::now();
  source.reset();  // the grabber was waiting out a back-off: it ends at once
  EXPECT_LT(seconds_since(destroying), 0.5);
}

TEST(LiveOpen, PasswordsInUrlsAreNotRepeated) {
  SourceOptions options;
  options.open_timeout_ms = 500;
  options.reconnect = 0;
  const auto message = open_error_of("http://user:hunter2@127.0.0.1:1/x", options, 3.0);
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  EXPECT_NE(message.find("user:***@127.0.0.1"), std::string::npos) << message;
}

TEST(LiveOpen, MalformedPipelineIsAnInputErrorAtOnce) {
  const auto message = input_error_of([] { open_source("videotestsrc ! nonexistentelement ! appsink", {}); }, 5.0);
  EXPECT_NE(message.find("GStreamer pipeline"), std::string::npos) << message;
}

// --- GStreamer pipelines: finite ones end at EOS; live ones keep the newest frame and reconnect when they end -------

TEST(Pipelines, FirstElementDecidesWhetherAPipelineIsLive) {
  EXPECT_FALSE(is_live_source("videotestsrc num-buffers=30 ! videoconvert ! appsink"));
  EXPECT_FALSE(is_live_source(" filesrc location=a.mp4 ! decodebin ! videoconvert ! appsink"));
  EXPECT_FALSE(is_live_source("uridecodebin uri=file:///data/a.mp4 ! videoconvert ! appsink"));
  EXPECT_TRUE(is_live_source("videotestsrc is-live=true ! videoconvert ! appsink"));
  EXPECT_TRUE(is_live_source("v4l2src device=/dev/video0 ! videoconvert ! appsink"));
  EXPECT_TRUE(is_live_source("rtspsrc location=rtsp://cam/1 ! decodebin ! videoconvert ! appsink"));
  EXPECT_TRUE(is_live_source("uridecodebin uri=rtsp://cam/1 ! videoconvert ! appsink"));
  EXPECT_TRUE(is_live_source("http://127.0.0.1:8080/stream.mjpg"));
  EXPECT_TRUE(is_live_source("0"));
  EXPECT_FALSE(is_live_source("clip.mp4"));
  EXPECT_FALSE(is_live_source("photos/*.jpg"));
}

TEST(Pipelines, FinitePipelineEndsAtEosWithEveryFrameInOrder) {
  Notices notices;
  SourceOptions options;
  notices.attach(options);
  auto source =
      open_source("videotestsrc num-buffers=30 ! video/x-raw,width=64,height=48 ! videoconvert ! appsink", options);
  EXPECT_FALSE(source->live());
  std::int64_t count = 0;
  while (const auto frame = source->next()) {
    EXPECT_EQ(frame->index, count);
    EXPECT_EQ(frame->image.size(), cv::Size(64, 48));
    EXPECT_GT(frame->timestamp, 1.6e9);
    ++count;
    std::this_thread::sleep_for(2ms);  // a slow consumer still gets every frame
  }
  EXPECT_EQ(count, 30);
  EXPECT_FALSE(source->next());
  const SourceStats stats = source->stats();
  EXPECT_EQ(stats.read, 30);
  EXPECT_EQ(stats.dropped, 0);
  EXPECT_EQ(stats.reconnects, 0);
  EXPECT_EQ(notices.count(""), 0);
}

TEST(LivePipeline, ReopensAnEndedLivePipelineAndCountsFramesOn) {
  SourceOptions options;
  options.reconnect = 2;
  options.backoff_initial_s = 0.05;
  Notices notices;
  notices.attach(options);
  // is-live: a camera-like source whose end of stream is a drop. 10 buffers then EOS: each reopen gives 10 more,
  // and every frame resets the attempt budget.
  auto source = open_source(
      "videotestsrc is-live=true num-buffers=10 ! video/x-raw,width=64,height=48,framerate=100/1 ! videoconvert ! "
      "appsink",
      options);
  EXPECT_TRUE(source->live());
  const auto start = Clock::now();
  std::int64_t last = -1;
  while (last < 25 && seconds_since(start) < 10) {
    const auto frame = source->next();
    ASSERT_TRUE(frame);
    EXPECT_GT(frame->index, last);
    EXPECT_EQ(frame->image.size(), cv::Size(64, 48));
    last = frame->index;
  }
  EXPECT_GE(last, 25) << "frames did not continue after the pipeline ended";
  const SourceStats stats = source->stats();
  EXPECT_GE(stats.reconnects, 2);
  EXPECT_GE(stats.read, 26);
  EXPECT_GE(notices.count("dropped (no frame for"), 2);
  EXPECT_GE(notices.count("reconnected (attempt 1 of 2)"), 2);
  source->stop();
  EXPECT_FALSE(source->next());
}

TEST(LivePipeline, PipelineThatNeverStartsIsAnInputErrorAfterTheOpenTimeout) {
  SourceOptions options;
  options.open_timeout_ms = 300;
  options.reconnect = 0;
  // A live source whose buffers are all dropped: OpenCV's open waits for caps that never come.
  const auto message =
      open_error_of("videotestsrc is-live=true ! valve drop=true ! videoconvert ! appsink", options, 3.0);
  EXPECT_NE(message.find("did not open within 1.3 s"), std::string::npos) << message;
}

TEST(LivePipeline, ReadThatNeverReturnsIsLostAfterTheGrace) {
  SourceOptions options;
  options.read_timeout_ms = 300;
  // One frame every 5 s, and GStreamer reads take no timeout: the watchdog gives up after 0.3 + 1 s.
  auto source = open_source(
      "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=1/5 ! videoconvert ! appsink", options);
  const auto start = Clock::now();
  try {
    while (source->next()) {
    }
    FAIL() << "a hung pipeline ended without an error";
  } catch (const SourceLostError& e) {
    EXPECT_NE(std::string(e.what()).find("hung"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 3.0);
  const auto destroying = Clock::now();
  source.reset();  // the grabber is still inside the read: left behind, not waited for
  EXPECT_LT(seconds_since(destroying), 0.5);
}

// --- MJPEG over HTTP: a loopback server that can serve, stall, or die -----------------------------------------------

class MjpegServer {
 public:
  enum class Mode { Serve, Stall };

  MjpegServer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int yes = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener_, 8) != 0) {
      throw std::runtime_error("test server cannot listen");
    }
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    threads_.emplace_back([this] { accept_loop(); });
  }
  ~MjpegServer() { die(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/stream.mjpg"; }
  void set_mode(Mode mode) { mode_ = mode; }
  int connections() const { return connections_; }

  // Closes every connection and the port: the server does not come back.
  void die() {
    if (stopping_.exchange(true)) return;
    {
      std::lock_guard lock(mutex_);
      for (const int fd : clients_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& thread : threads_) thread.join();
    ::close(listener_);
    for (const int fd : clients_) ::close(fd);
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd ready{listener_, POLLIN, 0};
      if (::poll(&ready, 1, 20) <= 0) continue;
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      std::lock_guard lock(mutex_);
      clients_.push_back(fd);
      ++connections_;
      client_threads_.emplace_back([this, fd] { serve(fd); });
    }
    std::vector<std::thread> clients;
    {
      std::lock_guard lock(mutex_);
      clients.swap(client_threads_);
    }
    for (auto& thread : clients) thread.join();
  }

  bool send_all(int fd, const void* data, std::size_t size) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t sent = ::send(fd, bytes, size, MSG_NOSIGNAL);
      if (sent <= 0) return false;
      bytes += sent;
      size -= static_cast<std::size_t>(sent);
    }
    return true;
  }

  void serve(int fd) {
    std::string request;
    char buffer[1024];
    while (request.find("\r\n\r\n") == std::string::npos && !stopping_) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) return;
      request.append(buffer, static_cast<std::size_t>(got));
    }
    const std::string header =
        "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nCache-Control: no-cache\r\n\r\n";
    if (!send_all(fd, header.data(), header.size())) return;
    for (int step = 0; !stopping_; ++step) {
      if (mode_ == Mode::Stall) {  // the socket stays open, nothing is sent
        std::this_thread::sleep_for(10ms);
        continue;
      }
      std::vector<uchar> jpeg;
      cv::imencode(".jpg", moving_square(160, 120, step), jpeg);
      const std::string part =
          "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + std::to_string(jpeg.size()) + "\r\n\r\n";
      if (!send_all(fd, part.data(), part.size()) || !send_all(fd, jpeg.data(), jpeg.size()) ||
          !send_all(fd, "\r\n", 2)) {
        return;
      }
      std::this_thread::sleep_for(20ms);  // 50 frames/s
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<Mode> mode_{Mode::Serve};
  std::atomic<int> connections_{0};
  std::mutex mutex_;
  std::vector<int> clients_;
  std::vector<std::thread> client_threads_;
  std::vector<std::thread> threads_;
};

SourceOptions fast_options() {
  SourceOptions options;
  options.open_timeout_ms = 2000;
  options.read_timeout_ms = 500;
  options.reconnect = 3;
  options.backoff_initial_s = 0.05;
  options.backoff_max_s = 0.2;
  return options;
}

TEST(LiveStream, KeepsOnlyTheNewestFrame) {
  MjpegServer server;
  auto source = open_source(server.url(), fast_options());
  EXPECT_TRUE(source->live());
  EXPECT_EQ(source->describe(), "stream " + server.url());
  const auto first = source->next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->image.size(), cv::Size(160, 120));
  EXPECT_EQ(first->source, server.url());
  std::this_thread::sleep_for(300ms);  // a slow consumer: ~15 frames arrive meanwhile
  const auto second = source->next();
  ASSERT_TRUE(second);
  EXPECT_GE(second->index - first->index, 5) << "stale buffered frames were returned";
  const auto third = source->next();  // blocks for a frame newer than the one returned
  ASSERT_TRUE(third);
  EXPECT_GT(third->index, second->index);
}

TEST(LiveStream, StatsCountDroppedFramesAndMeasureTheArrivalRate) {
  MjpegServer server;  // 50 frames/s
  auto source = open_source(server.url(), fast_options());
  ASSERT_TRUE(source->next());
  std::this_thread::sleep_for(1500ms);  // a slow consumer: the grabber replaces ~75 frames meanwhile
  const auto second = source->next();
  ASSERT_TRUE(second);
  EXPECT_GT(second->timestamp, 1.6e9);
  const SourceStats stats = source->stats();
  EXPECT_GE(stats.read, second->index + 1);
  EXPECT_EQ(stats.dropped, second->index - 1) << "every frame between the two taken ones was replaced";
  EXPECT_GE(stats.dropped, 30);
  EXPECT_EQ(stats.reconnects, 0);
  EXPECT_GT(stats.fps, 15.0) << "arrival rate";
  EXPECT_LT(stats.fps, 60.0) << "arrival rate";
}

TEST(LiveStream, StallTimesOutAndReconnects) {
  MjpegServer server;
  auto source = open_source(server.url(), fast_options());
  const auto before = source->next();
  ASSERT_TRUE(before);
  server.set_mode(MjpegServer::Mode::Stall);
  const auto start = Clock::now();
  while (server.connections() < 2 && seconds_since(start) < 5) std::this_thread::sleep_for(10ms);
  EXPECT_GE(server.connections(), 2) << "no reconnect after the read timeout";
  EXPECT_GT(seconds_since(start), 0.4) << "reconnected before the read timeout";
  server.set_mode(MjpegServer::Mode::Serve);
  const auto after = source->next();  // frames flow again on the new connection
  ASSERT_TRUE(after);
  EXPECT_GT(after->index, before->index);
  const auto reopening = Clock::now();  // the reopen may still be under way when a stale frame is returned
  while (source->stats().reconnects < 1 && seconds_since(reopening) < 5) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(source->stats().reconnects, 1);
}

TEST(LiveStream, DeadServerIsASourceLostErrorWithinTheBound) {
  MjpegServer server;
  const SourceOptions options = fast_options();
  auto source = open_source(server.url(), options);
  ASSERT_TRUE(source->next());
  server.die();
  const auto start = Clock::now();
  try {
    while (source->next()) {
    }
    FAIL() << "a dead stream ended without an error";
  } catch (const SourceLostError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("stream " + server.url() + " lost"), std::string::npos) << message;
    EXPECT_NE(message.find("after 3 reconnect attempts"), std::string::npos) << message;
  }
  // The documented bound: read timeout + back-offs + attempts x (open timeout + read timeout).
  const double backoffs = 0.05 + 0.1 + 0.2;
  const double bound = options.read_timeout_ms / 1000.0 + backoffs +
                       options.reconnect * (options.open_timeout_ms + options.read_timeout_ms) / 1000.0;
  const double took = seconds_since(start);
  EXPECT_LT(took, bound);
  EXPECT_LT(took, 2.0) << "refused connections should fail fast";
  EXPECT_THROW(source->next(), SourceLostError);
}

TEST(LiveStream, ServerThatStallsForGoodIsLostWithinTheBound) {
  MjpegServer server;
  SourceOptions options;
  options.open_timeout_ms = 600;
  options.read_timeout_ms = 300;
  options.reconnect = 1;
  options.backoff_initial_s = 0.05;
  auto source = open_source(server.url(), options);
  ASSERT_TRUE(source->next());
  server.set_mode(MjpegServer::Mode::Stall);  // this connection and every later one: open socket, no frames
  const auto start = Clock::now();
  const auto drain = [&] {
    while (source->next()) {
    }
  };
  EXPECT_THROW(drain(), SourceLostError);
  // read timeout + back-off + 1 x (open timeout + read timeout): a reopened connection that never delivers
  const double bound = 0.3 + 0.05 + 1 * (0.6 + 0.3);
  EXPECT_LT(seconds_since(start), bound + 0.5);
  EXPECT_GE(server.connections(), 2);
}

TEST(LiveStream, StopWakesABlockedNextAtOnce) {
  MjpegServer server;
  auto source = open_source(server.url(), fast_options());
  ASSERT_TRUE(source->next());
  server.set_mode(MjpegServer::Mode::Stall);
  std::atomic<Clock::rep> stopped_at{0};
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stopped_at = Clock::now().time_since_epoch().count();
    source->stop();
  });
  while (source->next()) {  // frames sent before the stall, then a wait that only stop() ends
  }
  const auto woke = Clock::now();
  stopper.join();
  EXPECT_LT(std::chrono::duration<double>(woke - Clock::time_point(Clock::duration(stopped_at.load()))).count(), 0.1);
  const auto destroying = Clock::now();
  source.reset();  // joins the grabber, which is inside a read that times out within read_timeout
  EXPECT_LT(seconds_since(destroying), 0.5 + 0.3);
}

}  // namespace
}  // namespace jitvision::io
