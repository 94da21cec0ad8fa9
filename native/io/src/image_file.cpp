#include "jitvision/io/image_file.hpp"

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "jitvision/core/errors.hpp"

namespace jitvision::io {

namespace {

// GStreamer logs through GLib ("GStreamer-CRITICAL ... Trying to dispose element" whenever OpenCV 4.6 drops a
// pipeline that failed to start). GLib is looked up, not linked: it is loaded only with OpenCV's GStreamer backend.
void quiet_gstreamer_logging() {
  void* glib = ::dlopen("libglib-2.0.so.0", RTLD_NOW | RTLD_NOLOAD);
  if (!glib) return;
  using Handler = void (*)(const char*, int, const char*, void*);
  using SetHandler = unsigned (*)(const char*, int, Handler, void*);
  constexpr int kWarningsAndCriticals = (1 << 3) | (1 << 4) | (1 << 5);  // G_LOG_LEVEL_CRITICAL|WARNING|MESSAGE
  if (const auto set_handler = reinterpret_cast<SetHandler>(::dlsym(glib, "g_log_set_handler"))) {
    set_handler(
        "GStreamer", kWarningsAndCriticals, [](const char*, int, const char*, void*) {}, nullptr);
  }
  ::dlclose(glib);  // drops only the reference RTLD_NOLOAD took
}

}  // namespace

void quiet_opencv_logging() {
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  // FFmpeg logs on its own ("moov atom not found"); OpenCV reads this once, when its FFmpeg backend starts.
  // -8 is AV_LOG_QUIET. A value the user set is kept.
  ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);
  quiet_gstreamer_logging();
}

cv::Mat read_image_bgr(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError("image " + path + " does not exist");
  if (fs::is_directory(path, ec)) throw InputError("image " + path + " is a directory");
  std::ifstream file(path, std::ios::binary);
  if (!file) throw InputError("image " + path + " cannot be opened (permissions?)");
  // Unsigned bytes: a char buffer reaches imdecode as CV_8S, which the WebP decoder refuses.
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw InputError("image " + path + " is empty (0 bytes)");

  // imdecode rather than imread: it decides by content, not by name, and does not log on failure.
  cv::Mat image;
  try {
    image = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty()) throw InputError("image " + path + " is not a readable image (unknown format or corrupt data)");
  if (image.depth() != CV_8U) {
    cv::Mat scaled;
    const double scale = image.depth() == CV_16U ? 1.0 / 257.0 : 1.0;
    image.convertTo(scaled, CV_8U, scale);
    image = scaled;
  }
  if (image.channels() == 1) {
    cv::cvtColor(image, image, cv::COLOR_GRAY2BGR);
  } else if (image.channels() == 4) {
    cv::cvtColor(image, image, cv::COLOR_BGRA2BGR);
  }
  return image;
}

}  // namespace jitvision::io
