#include "jitvision/io/image_file.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_header.hpp"

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

namespace {

// Opens without blocking (a FIFO would wait for a writer) and without reading: what is there must be a regular file
// of a size an image within the pixel limit can have. Returns the open descriptor and the file size.
std::pair<int, std::int64_t> open_image_file(const std::string& path, std::int64_t max_pixels) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) throw InputError("image " + path + " does not exist");
    if (error == ELOOP) throw InputError("image " + path + " is a symlink loop");
    throw InputError("image " + path + " cannot be opened: " + std::strerror(error));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const bool directory = S_ISDIR(st.st_mode);
    ::close(fd);
    throw InputError("image " + path + (directory ? " is a directory" : " is not a regular file"));
  }
  const std::int64_t limit = max_image_file_bytes(max_pixels);
  if (st.st_size > limit) {
    ::close(fd);
    throw InputError("image " + path + " is " + std::to_string(st.st_size) +
                     " bytes, more than an image within --max-pixels " + std::to_string(max_pixels) + " can take (" +
                     std::to_string(limit) + ")");
  }
  return {fd, static_cast<std::int64_t>(st.st_size)};
}

// Reads exactly the size fstat gave (never more, whatever the file does meanwhile).
std::vector<std::uint8_t> read_image_bytes(const std::string& path, std::int64_t max_pixels) {
  const auto [fd, size] = open_image_file(path, max_pixels);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  bytes.resize(done);
  return bytes;
}

}  // namespace

cv::Mat read_image_bgr(const std::string& path, std::int64_t max_pixels) {
  // Unsigned bytes: a char buffer reaches imdecode as CV_8S, which the WebP decoder refuses.
  const std::vector<std::uint8_t> bytes = read_image_bytes(path, max_pixels);
  if (bytes.empty()) throw InputError("image " + path + " is empty (0 bytes)");
  if (const auto size = image_header_size(bytes); size && size->pixels() > max_pixels) {
    throw InputError("image " + path + " is " + std::to_string(size->width) + "x" + std::to_string(size->height) +
                     " (" + std::to_string(size->pixels()) + " pixels), over the --max-pixels limit of " +
                     std::to_string(max_pixels) + "; not decoded");
  }

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
