#pragma once
#include <cstdint>
#include <string>

#include <opencv2/core/mat.hpp>

#include "jitvision/io/image_header.hpp"

namespace jitvision::io {

// Silences OpenCV's own logging and its backends' (FFmpeg, GStreamer), so that our one-line errors are the only
// thing on stderr. Call it first thing in main(), before any other thread starts (it sets an environment variable).
void quiet_opencv_logging();

// Reads an image file as 8-bit BGR (grey and alpha images are converted). Throws InputError saying why a file
// cannot be used (missing, a symlink loop, not a regular file, empty, not an image). Bounded: a file larger than
// max_image_file_bytes(max_pixels) is not read, and an image whose header declares more than max_pixels pixels is
// not decoded (image_header.hpp).
cv::Mat read_image_bgr(const std::string& path, std::int64_t max_pixels = kDefaultMaxPixels);

}  // namespace jitvision::io
