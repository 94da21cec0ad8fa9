// Image sizes read from headers before decoding, and read_image_bgr's bounds: decompression bombs, huge files and
// non-regular files are refused without being decoded or read whole; one bad file in a list is one skipped frame.
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "error_message.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_file.hpp"
#include "jitvision/io/image_header.hpp"
#include "jitvision/io/sources.hpp"
#include "temp_files.hpp"

namespace jitvision::io {
namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> encoded(const std::string& ext, const cv::Mat& image) {
  std::vector<std::uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(ext, image, bytes)) << ext;
  return bytes;
}

// A PNG whose header declares width x height, followed by no image data: enough for the header check, which must
// refuse it before any decoder allocates the image.
std::vector<std::uint8_t> png_header(std::uint32_t width, std::uint32_t height) {
  std::vector<std::uint8_t> b{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (const std::uint32_t v : {width, height}) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  for (const std::uint8_t v : {8, 2, 0, 0, 0, 0, 0, 0, 0}) b.push_back(v);  // depth, colour type, ..., CRC
  return b;
}

class ImageFiles : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes) const {
    const auto p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return p;
  }
  testutil::TempDir temp_{"header"};
  const fs::path dir_ = temp_.path();
};

TEST(ImageHeader, EveryFormatWeReadGivesTheSizeOpenCvWrote) {
  const cv::Mat colour(23, 37, CV_8UC3, cv::Scalar(10, 200, 90));
  const cv::Mat grey(23, 37, CV_8UC1, cv::Scalar(128));
  for (const auto* ext : {".png", ".jpg", ".bmp", ".webp", ".ppm", ".tif"}) {
    EXPECT_EQ(image_header_size(encoded(ext, colour)), (ImageSize{37, 23})) << ext;
  }
  for (const auto* ext : {".pgm", ".pbm", ".png", ".jpg", ".tif"}) {
    EXPECT_EQ(image_header_size(encoded(ext, grey)), (ImageSize{37, 23})) << ext << " grey";
  }
  // Lossless WebP (VP8L) too.
  std::vector<std::uint8_t> lossless;
  ASSERT_TRUE(cv::imencode(".webp", colour, lossless, {cv::IMWRITE_WEBP_QUALITY, 101}));
  EXPECT_EQ(image_header_size(lossless), (ImageSize{37, 23}));
}

TEST(ImageHeader, PnmCommentsAndAsciiHeadersAreParsed) {
  const std::string text = "P2\n# a comment 999 999\n  12 7\n255\n";
  EXPECT_EQ(image_header_size({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}), (ImageSize{12, 7}));
}

TEST(ImageHeader, UnknownAndTruncatedHeadersAreLeftToTheDecoder) {
  const std::string text = "not an image at all";
  EXPECT_EQ(image_header_size({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}), std::nullopt);
  for (const auto* ext : {".png", ".jpg", ".bmp", ".webp", ".tif"}) {
    auto bytes = encoded(ext, cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)));
    for (const std::size_t keep : {std::size_t{3}, std::size_t{13}, std::size_t{20}}) {
      bytes.resize(std::min(bytes.size(), keep));
      const auto size = image_header_size(bytes);  // never reads past the end (ASan would tell); no size or a size
      EXPECT_TRUE(!size || size->pixels() >= 0) << ext;
    }
  }
  EXPECT_EQ(image_header_size(png_header(30000, 30000)), (ImageSize{30000, 30000}));
}

TEST_F(ImageFiles, ABombIsRefusedByItsHeaderNamingTheLimit) {
  const auto bomb = write("bomb.png", png_header(30000, 30000));
  const auto message = testutil::message_of<InputError>([&] { read_image_bgr(bomb); });
  EXPECT_NE(message.find("30000x30000"), std::string::npos) << message;
  EXPECT_NE(message.find("--max-pixels limit of 100000000"), std::string::npos) << message;
  // A real, small image over a lowered limit is refused the same way; under it, it is read.
  const auto photo = write("photo.png", encoded(".png", cv::Mat(30, 40, CV_8UC3, cv::Scalar(5, 6, 7))));
  EXPECT_NE(testutil::message_of<InputError>([&] { read_image_bgr(photo, 1199); }).find("40x30"), std::string::npos);
  EXPECT_EQ(read_image_bgr(photo, 1200).size(), cv::Size(40, 30));
}

TEST_F(ImageFiles, AFileLargerThanAnyAllowedImageIsNotRead) {
  const auto big =
      write("big.jpg", std::vector<std::uint8_t>(static_cast<std::size_t>(max_image_file_bytes(1000)) + 1));
  const auto message = testutil::message_of<InputError>([&] { read_image_bgr(big, 1000); });
  EXPECT_NE(message.find("more than an image within --max-pixels 1000 can take"), std::string::npos) << message;
}

TEST_F(ImageFiles, FifosDevicesLoopsAndDirectoriesAreNamedForWhatTheyAre) {
  const auto fifo = (dir_ / "f.jpg").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(testutil::message_of<InputError>([&] { read_image_bgr(fifo); }).find("is not a regular file"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));  // no writer: must not block
  EXPECT_NE(testutil::message_of<InputError>([&] { read_image_bgr("/dev/zero"); }).find("is not a regular file"),
            std::string::npos);
  fs::create_symlink(dir_ / "loop.png", dir_ / "loop.png");
  EXPECT_NE(
      testutil::message_of<InputError>([&] { read_image_bgr((dir_ / "loop.png").string()); }).find("symlink loop"),
      std::string::npos);
  EXPECT_NE(testutil::message_of<InputError>([&] { read_image_bgr(dir_.string()); }).find("is a directory"),
            std::string::npos);
  EXPECT_NE(
      testutil::message_of<InputError>([&] { read_image_bgr((dir_ / "missing.png").string()); }).find("does not exist"),
      std::string::npos);
  // In a list too: a loop is not reported as missing.
  auto source = open_source((dir_ / "loop.png").string(), {});
  EXPECT_NE(testutil::message_of<InputError>([&] { source->next(); }).find("symlink loop"), std::string::npos);
}

TEST_F(ImageFiles, ABombInAListIsOneSkippedFrameAndTheListGoesOn) {
  write("a.png", encoded(".png", cv::Mat(30, 40, CV_8UC3, cv::Scalar(5, 6, 7))));
  write("b.png", png_header(30000, 30000));
  write("c.webp", encoded(".webp", cv::Mat(20, 10, CV_8UC3, cv::Scalar(5, 6, 7))));
  auto source = open_source(dir_.string(), {});
  EXPECT_EQ(source->next()->image.size(), cv::Size(40, 30));
  try {
    source->next();
    ADD_FAILURE() << "the bomb was decoded";
  } catch (const FrameError& e) {
    EXPECT_EQ(e.source(), (dir_ / "b.png").string());
    EXPECT_EQ(e.index(), 0);
  }
  EXPECT_EQ(source->next()->image.size(), cv::Size(10, 20));  // WebP decodes
  EXPECT_FALSE(source->next());
}

TEST(ClassifySource, AnImageOrVideoNameWithABangIsAFileNotAPipeline) {
  EXPECT_EQ(classify_source("missing!.jpg"), SourceKind::ImageFiles);
  EXPECT_EQ(classify_source("wow!.mp4"), SourceKind::VideoFile);
  EXPECT_EQ(classify_source("videotestsrc ! appsink"), SourceKind::GStreamerPipeline);
  auto source = open_source("missing!.jpg", {});
  EXPECT_NE(testutil::message_of<InputError>([&] { source->next(); }).find("does not exist"), std::string::npos);
}

}  // namespace
}  // namespace jitvision::io
