// The detect run end to end in-process, on the bundled digit detector and small generated inputs: a failure in any
// stage, of any exception type, ends the run with one error line and the right exit code (no std::terminate, no
// hang), results already written are kept, names that are not UTF-8 reach the JSON lines, and a saved video keeps
// its source's frame rate.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include "commands.hpp"
#include "jitvision/core/image.hpp"
#include "json_text.hpp"
#include "pipeline.hpp"
#include "temp_files.hpp"

namespace jitvision::app {
namespace {

namespace fs = std::filesystem;

const std::string kModel = std::string(JITVISION_TEST_MODELS_DIR) + "/digits_yolov5n.torchscript";

class DetectRun : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.file(name); }

  static cv::Mat noise(int seed) {
    cv::Mat m(96, 128, CV_8UC3);
    cv::theRNG().state = static_cast<std::uint64_t>(seed) + 1;
    cv::randu(m, 0, 255);
    return m;
  }

  std::string write_video(const std::string& name, double fps, int frames) const {
    cv::VideoWriter w(path(name), cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), fps, cv::Size(128, 96));
    EXPECT_TRUE(w.isOpened());
    for (int i = 0; i < frames; ++i) w.write(noise(i));
    return path(name);
  }

  DetectOptions options(const std::vector<std::string>& sources) const {
    DetectOptions o;
    o.model = kModel;
    o.sources = sources;
    o.device = "cpu";
    o.img_size = 64;
    o.threads = 1;
    o.quiet = true;
    return o;
  }

  static std::vector<nlohmann::json> json_lines(const std::string& file) {
    std::vector<nlohmann::json> rows;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    return rows;
  }

  testutil::TempDir dir_{"app-tests"};
};

TEST_F(DetectRun, ASavedVideoHasItsSourcesFrameRate) {
  auto o = options({write_video("clip12.avi", 12, 5)});
  o.save_video = path("out.avi");
  ASSERT_EQ(run_detect_pipeline(o).exit_code, 0);
  cv::VideoCapture saved(o.save_video);
  ASSERT_TRUE(saved.isOpened());
  EXPECT_NEAR(saved.get(cv::CAP_PROP_FPS), 12.0, 0.01);
  EXPECT_EQ(saved.get(cv::CAP_PROP_FRAME_COUNT), 5);
}

TEST_F(DetectRun, ImagesHaveNoFrameRateSoTheirVideoIs30Fps) {
  cv::imwrite(path("a.png"), noise(1));
  auto o = options({path("a.png")});
  o.save_video = path("out.avi");
  ASSERT_EQ(run_detect_pipeline(o).exit_code, 0);
  EXPECT_NEAR(cv::VideoCapture(o.save_video).get(cv::CAP_PROP_FPS), 30.0, 0.01);
}

TEST_F(DetectRun, ANameThatIsNotUtf8IsWrittenWithEscapedBytesAndKeepsItsResults) {
  const std::string latin1 = path("caf\xe9.png");
  ASSERT_TRUE(cv::imwrite(latin1, noise(2)));
  auto o = options({latin1, path("plain.png")});
  ASSERT_TRUE(cv::imwrite(path("plain.png"), noise(3)));
  o.json = path("out.jsonl");
  ASSERT_EQ(run_detect_pipeline(o).exit_code, 0);
  auto rows = json_lines(o.json);
  ASSERT_EQ(rows.size(), 2u);
  // The two sources are read at once: either may come first.
  if (rows[0]["source"] == path("plain.png")) std::swap(rows[0], rows[1]);
  EXPECT_EQ(rows[0]["source"], escape_invalid_utf8(latin1));
  EXPECT_NE(rows[0]["source"].get<std::string>().find("caf\\xe9.png"), std::string::npos);
  EXPECT_EQ(rows[0]["shape"], nlohmann::json({96, 128}));
  EXPECT_EQ(rows[1]["source"], path("plain.png"));
}

TEST_F(DetectRun, AVideoWriterThatCannotOpenEndsTheRunWithTheOutputCodeAndKeepsTheJson) {
  fs::create_directories(path("taken.mp4"));  // a directory where the video file should go
  auto o = options({write_video("clip.avi", 10, 4)});
  o.save_video = path("taken.mp4");
  o.json = path("out.jsonl");
  ::testing::internal::CaptureStderr();
  const auto summary = run_detect_pipeline(o);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(summary.exit_code, static_cast<int>(ExitCode::Output)) << err;
  EXPECT_NE(err.find("jitvision: error: cannot write video"), std::string::npos) << err;
  EXPECT_EQ(json_lines(o.json).size(), 1u);  // the first frame's line was written before its video frame failed
}

// run_pipeline itself, with stage bodies that fail in ways the real ones should not.
class Stages : public DetectRun {
 protected:
  void SetUp() override {
    DetectRun::SetUp();
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(cv::imwrite(path("f" + std::to_string(i) + ".png"), noise(i)));
    DetectorOptions dopt;
    dopt.img_size = 64;
    detector_ = std::make_unique<Detector>(load_model(kModel), torch::kCPU, dopt);
    capture_.sources = {dir_.path().string()};
    capture_.prepare = [this](const cv::Mat& m) {
      return detector_->prepare(as_tensor(ImageView{m.data, m.rows, m.cols, m.channels(), m.step[0]}));
    };
  }

  ExitCode run(const std::function<bool(Result&)>& consume, int workers = 2) {
    Pipeline p;
    TimingStats capture_ms;
    ::testing::internal::CaptureStderr();
    run_pipeline(p, capture_, InferenceJob{detector_.get(), nullptr, 1}, workers, capture_ms, consume);
    stderr_ = ::testing::internal::GetCapturedStderr();
    skipped_ = p.skipped;
    return p.status.code();
  }

  int error_lines() const {
    int n = 0;
    for (std::size_t at = 0; (at = stderr_.find("jitvision: error: ", at)) != std::string::npos; ++at) ++n;
    return n;
  }

  std::unique_ptr<Detector> detector_;
  CaptureJob capture_;
  std::string stderr_;
  std::int64_t skipped_ = 0;
};

TEST_F(Stages, EveryResultArrivesInCaptureOrder) {
  std::vector<std::string> seen;
  EXPECT_EQ(run([&](Result& r) {
              seen.push_back(fs::path(r.frame.source).filename().string());
              return true;
            }),
            ExitCode::Ok);
  EXPECT_EQ(seen, (std::vector<std::string>{"f0.png", "f1.png", "f2.png", "f3.png"}));
}

TEST_F(Stages, AnOpenCvExceptionInTheOutputIsOneInternalErrorAndStopsEveryStage) {
  std::atomic<int> calls{0};
  const auto code = run([&](Result&) -> bool {
    ++calls;
    throw cv::Exception(cv::Error::StsError, "encoder gone", "write", __FILE__, __LINE__);
  });
  EXPECT_EQ(code, ExitCode::Internal);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(error_lines(), 1) << stderr_;
  EXPECT_NE(stderr_.find("jitvision: error: output failed: OpenCV: encoder gone"), std::string::npos) << stderr_;
}

TEST_F(Stages, AJsonExceptionInTheOutputIsAnInternalError) {
  const auto code = run([&](Result&) -> bool { return nlohmann::json(std::string("\xff")).dump().empty(); });
  EXPECT_EQ(code, ExitCode::Internal);
  EXPECT_NE(stderr_.find("jitvision: error: output failed: JSON: "), std::string::npos) << stderr_;
}

// A frame that cannot be letterboxed (whatever throws: LibTorch, OpenCV, our own InputError) is skipped, not its
// source: it reaches the output in its place as a fault, with one warning line, and the exit code is 5.
TEST_F(Stages, AFrameThatCannotBeLetterboxedIsSkippedAndTheRestStillRun) {
  int prepared = 0;
  capture_.prepare = [&, inner = capture_.prepare](const cv::Mat& m) {
    TORCH_CHECK(++prepared != 2, "letterbox broke");
    if (prepared == 3) throw InputError("frame 3 is unreadable");
    return inner(m);
  };
  std::vector<std::string> faults;
  int written = 0;
  EXPECT_EQ(run([&](Result& r) {
              if (r.fault.empty()) {
                ++written;
              } else {
                faults.push_back(fs::path(r.frame.source).filename().string() + ": " + r.fault);
              }
              return true;
            }),
            ExitCode::Input);
  EXPECT_EQ(written, 2);
  ASSERT_EQ(faults.size(), 2u);
  EXPECT_EQ(faults[0].rfind("f1.png: frame 0 of ", 0), 0u) << faults[0];
  EXPECT_NE(faults[0].find("(128x96) cannot be letterboxed: LibTorch: letterbox broke"), std::string::npos);
  EXPECT_NE(faults[1].find("cannot be letterboxed: frame 3 is unreadable"), std::string::npos) << faults[1];
  EXPECT_EQ(error_lines(), 0) << stderr_;
  EXPECT_EQ(skipped_, 2);
  EXPECT_NE(stderr_.find("jitvision: warning: skipped: frame 0 of "), std::string::npos) << stderr_;
}

TEST_F(Stages, AnInternalErrorAfterASkippedFrameDecidesTheExitCode) {
  int prepared = 0;
  capture_.prepare = [&, inner = capture_.prepare](const cv::Mat& m) {
    if (++prepared == 1) throw InputError("frame 1 is unreadable");
    return inner(m);
  };
  EXPECT_EQ(run(
                [&](Result& r) -> bool {
                  if (r.fault.empty()) throw std::logic_error("bug");
                  return true;
                },
                1),
            ExitCode::Internal);
  EXPECT_EQ(error_lines(), 1) << stderr_;
  EXPECT_NE(stderr_.find("jitvision: error: output failed: bug"), std::string::npos) << stderr_;
}

TEST_F(Stages, ConsumerAskingToStopEndsTheRunCleanly) {
  int written = 0;
  EXPECT_EQ(run([&](Result&) { return ++written < 2; }), ExitCode::Ok);
  EXPECT_GE(written, 2);
  EXPECT_LE(written, 4);
}

}  // namespace
}  // namespace jitvision::app
