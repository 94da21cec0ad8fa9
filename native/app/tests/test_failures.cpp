// The app's error model without models or video: what each exception type maps to, which failure decides the
// exit code when several happen, the JSON text of names that are not UTF-8, and the --version extension lines.
#include <new>
#include <sstream>
#include <stdexcept>

#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "cli.hpp"
#include "failure.hpp"
#include "jitvision/io/inputs.hpp"
#include "json_text.hpp"
#include "pipeline.hpp"

namespace jitvision::app {
namespace {

template <typename E>
Failure failure_from(E e) {
  return failure_of(std::make_exception_ptr(std::move(e)));
}

TEST(FailureOf, KeepsTheCodeAndMessageOfOurErrors) {
  const auto f = failure_from(OutputError("cannot write video out.mp4"));
  EXPECT_EQ(f.code, ExitCode::Output);
  EXPECT_EQ(f.message, "cannot write video out.mp4");
  EXPECT_EQ(failure_from(SourceLostError("gone")).code, ExitCode::SourceLost);
  EXPECT_EQ(static_cast<int>(failure_from(InferenceServerError("unreachable")).code), 8);
  EXPECT_EQ(failure_from(InputError("bad")).code, ExitCode::Input);
}

TEST(FailureOf, MapsEveryOtherLibrarysExceptionToAnInternalErrorOnOneLine) {
  nlohmann::json bad = std::string("caf\xe9");
  std::exception_ptr json_error;
  try {
    (void)bad.dump();
  } catch (...) {
    json_error = std::current_exception();
  }
  ASSERT_TRUE(json_error);
  const auto j = failure_of(json_error);
  EXPECT_EQ(j.code, ExitCode::Internal);
  EXPECT_EQ(j.message.rfind("JSON: ", 0), 0u) << j.message;

  const auto cv_failure = failure_from(cv::Exception(cv::Error::StsError, "writer broke", "write", "f.cpp", 1));
  EXPECT_EQ(cv_failure.code, ExitCode::Internal);
  EXPECT_EQ(cv_failure.message, "OpenCV: writer broke (in write)");

  std::exception_ptr torch_error;
  try {
    TORCH_CHECK(false, "shape mismatch\nsecond line");
  } catch (...) {
    torch_error = std::current_exception();
  }
  const auto t = failure_of(torch_error);
  EXPECT_EQ(t.code, ExitCode::Internal);
  EXPECT_EQ(t.message.rfind("LibTorch: shape mismatch", 0), 0u) << t.message;
  EXPECT_EQ(t.message.find('\n'), std::string::npos);

  EXPECT_EQ(failure_from(std::bad_alloc()).message, "out of memory");
  EXPECT_EQ(failure_from(std::runtime_error("boom")).message, "boom");
  EXPECT_EQ(failure_from(42).code, ExitCode::Internal);
  EXPECT_EQ(failure_from(42).message, "unknown exception");
}

TEST(ExitStatus, AnInternalErrorOutranksEverything) {
  ExitStatus s;
  s.record(ExitCode::Input);
  s.record(ExitCode::Internal);
  EXPECT_EQ(s.code(), ExitCode::Internal);
  s.record(ExitCode::SourceLost);
  EXPECT_EQ(s.code(), ExitCode::Internal);
}

TEST(ExitStatus, TheFirstFatalFailureStandsWhateverItsNumber) {
  ExitStatus s;
  s.record(ExitCode::Output);
  s.record(ExitCode::SourceLost);  // 7 > 6, but later
  EXPECT_EQ(s.code(), ExitCode::Output);
  s.record(ExitCode::Input);
  EXPECT_EQ(s.code(), ExitCode::Output);
}

TEST(ExitStatus, AnUnreadableInputCountsOnlyWhenNothingElseFailed) {
  ExitStatus s;
  EXPECT_EQ(s.code(), ExitCode::Ok);
  s.record(ExitCode::Input);
  EXPECT_EQ(s.code(), ExitCode::Input);
  s.record(ExitCode::Model);
  EXPECT_EQ(s.code(), ExitCode::Model);
}

TEST(PipelineFail, AFatalFailureStopsCaptureAndLetsTheQueuedFramesDrain) {
  Pipeline p;
  ASSERT_TRUE(p.frames.push(0, CapturedFrame{}));
  p.fail(std::make_exception_ptr(std::runtime_error("boom")), "inference", true);
  EXPECT_TRUE(p.stop);
  EXPECT_EQ(p.status.code(), ExitCode::Internal);
  EXPECT_FALSE(p.frames.push(0, CapturedFrame{}));  // capture can add nothing more
  const auto any = [](const CapturedFrame&, const CapturedFrame&) { return true; };
  EXPECT_EQ(p.frames.take(4, any).size(), 1u);  // but what was queued still reaches a worker
  EXPECT_TRUE(p.frames.drained());
  EXPECT_TRUE(p.results.push(Result{}));  // and its result still reaches the output
}

TEST(PipelineFail, ANonFatalFailureOnlyRecordsItsCode) {
  Pipeline p;
  p.fail(std::make_exception_ptr(InputError("one bad image")), "capture", false);
  EXPECT_FALSE(p.stop);
  EXPECT_EQ(p.status.code(), ExitCode::Input);
  EXPECT_TRUE(p.frames.push(0, CapturedFrame{}));
}

TEST(EscapeInvalidUtf8, LeavesValidTextAlone) {
  EXPECT_EQ(escape_invalid_utf8("plain/name.jpg"), "plain/name.jpg");
  EXPECT_EQ(escape_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.png"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.png");
  EXPECT_EQ(escape_invalid_utf8(""), "");
}

TEST(EscapeInvalidUtf8, WritesEachInvalidByteAsBackslashXnn) {
  EXPECT_EQ(escape_invalid_utf8("caf\xe9.jpg"), "caf\\xe9.jpg");
  EXPECT_EQ(escape_invalid_utf8("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escape_invalid_utf8("\xc3"), "\\xc3");                             // truncated sequence
  EXPECT_EQ(escape_invalid_utf8("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(escape_invalid_utf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(escape_invalid_utf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  // The result is always something nlohmann::json can write.
  EXPECT_NO_THROW((void)nlohmann::json(escape_invalid_utf8("a\x80\xc3\xa9\xff")).dump());
}

TEST(Version, PrintsTheIoLayersExtensionListsAsTwoLines) {
  std::ostringstream out;
  print_version(out);
  const std::string text = out.str();
  EXPECT_NE(text.find("\nimage extensions: .bmp .jp2 .jpeg .jpg .pbm .pgm .png .ppm .tif .tiff .webp\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nvideo extensions: .avi .flv .gif .m4v .mjpeg .mkv .mov .mp4 .mpeg .mpg .ts .webm .wmv\n"),
            std::string::npos)
      << text;
  EXPECT_TRUE(io::has_image_extension("A.JPG"));
  EXPECT_TRUE(io::has_video_extension("clip.Ts"));
  EXPECT_FALSE(io::has_video_extension("photo.png"));
}

TEST(ModelRunError, KeepsTheReasonLineOfATorchScriptTracebackAndAllOfItWhenVerbose) {
  const std::runtime_error traceback(
      "The following operation failed in the TorchScript interpreter.\n"
      "Traceback of TorchScript, serialized code (most recent call last):\n"
      "  File \"code/__torch__.py\", line 8, in forward\n"
      "    return torch.view(x, [-1, 5])\n"
      "RuntimeError: shape '[-1, 5]' is invalid for input of size 784\n");
  const auto error = model_run_error("the model failed on frame 3 of clip.mp4", traceback);
  EXPECT_EQ(error.code(), ExitCode::Model);
  EXPECT_EQ(std::string(error.what()),
            "the model failed on frame 3 of clip.mp4: RuntimeError: shape '[-1, 5]' is invalid for input of size 784");
  // Without a "SomethingError: " line, the first line says it.
  EXPECT_EQ(std::string(model_run_error("m", std::runtime_error("out of range\nmore")).what()), "m: out of range");
  set_verbose(true);
  EXPECT_NE(std::string(model_run_error("m", traceback).what()).find("Traceback of TorchScript"), std::string::npos);
  set_verbose(false);
}

}  // namespace
}  // namespace jitvision::app
