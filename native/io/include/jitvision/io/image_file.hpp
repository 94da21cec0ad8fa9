#pragma once
#include <string>

#include <opencv2/core/mat.hpp>

namespace jitvision::io {

// Silences OpenCV's own logging and its backends' (FFmpeg, GStreamer), so that our one-line errors are the only
// thing on stderr. Call it first thing in main(), before any other thread starts (it sets an environment variable).
void quiet_opencv_logging();

// Reads an image file as 8-bit BGR (grey and alpha images are converted). Throws InputError saying why a file
// cannot be used (missing, empty, not an image).
cv::Mat read_image_bgr(const std::string& path);

}  // namespace jitvision::io
