#include "jitvision/io/sinks.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <opencv2/highgui.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "jitvision/core/errors.hpp"

namespace jitvision::io {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Creates (O_CREAT|O_EXCL|O_NOFOLLOW, a random name: nothing planted there is followed or reused) and removes a
// probe file: permission bits alone say nothing for root or read-only mounts.
void check_writable_dir(const fs::path& dir, const std::string& what) {
  std::random_device random;
  for (int attempt = 0; attempt < 16; ++attempt) {
    char name[64];
    std::snprintf(name, sizeof name, ".jitvision-write-test-%08x%08x", random(), random());
    const fs::path probe = dir / name;
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(probe.c_str());
      return;
    }
    if (errno != EEXIST) break;
  }
  throw OutputError(what + ": directory " + dir.string() + " is not writable");
}

std::string sanitised(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    if (keep) {
      out += c;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
    if (out.size() >= 40) break;
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

// The frames a finished video file holds: the container's count, or (when it has none) the frames read back, at most
// `expected` + 1. -1 when the file does not open as a video.
std::int64_t frames_in_video(const std::string& path, std::int64_t expected) {
  cv::VideoCapture check;
  try {
    check.open(path, cv::CAP_FFMPEG);
    if (!check.isOpened()) return -1;
    const double declared = check.get(cv::CAP_PROP_FRAME_COUNT);
    if (std::isfinite(declared) && declared > 0) return std::llround(declared);
    std::int64_t n = 0;
    while (n <= expected && check.grab()) ++n;
    return n;
  } catch (const cv::Exception&) {
    return -1;
  }
}

bool dark(const cv::Scalar& bgr) { return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2] < 150; }

// Draws `text` on a filled box whose top-left corner is `corner`, kept inside the image.
void draw_label(cv::Mat& image, const std::string& text, cv::Point corner, const cv::Scalar& background, double scale,
                int thickness) {
  constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFont, scale, thickness, &baseline);
  const int pad = std::max(2, thickness + 1);
  const cv::Size box(size.width + 2 * pad, size.height + baseline + 2 * pad);
  corner.x = std::clamp(corner.x, 0, std::max(0, image.cols - box.width));
  corner.y = std::clamp(corner.y, 0, std::max(0, image.rows - box.height));
  cv::rectangle(image, cv::Rect(corner, box), background, cv::FILLED, cv::LINE_8);
  const cv::Scalar ink = dark(background) ? cv::Scalar(255, 255, 255) : cv::Scalar(0, 0, 0);
  cv::putText(image, text, {corner.x + pad, corner.y + pad + size.height}, kFont, scale, ink, thickness, cv::LINE_AA);
}

}  // namespace

std::string source_stem(const std::string& source) {
  std::string trimmed = source;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const fs::path path(trimmed);
  std::string stem = sanitised(path.stem().string());
  if (stem.empty()) stem = sanitised(path.parent_path().filename().string());  // a glob: its folder's name
  return stem.empty() ? "frame" : stem;
}

UniqueNames::UniqueNames(std::function<bool(const std::string&)> taken_on_disk)
    : taken_on_disk_(std::move(taken_on_disk)) {}

std::string UniqueNames::name_for(const std::string& source, const std::string& stem, const std::string& extension,
                                  const std::string& suffix) {
  if (const auto it = name_of_.find(source); it != name_of_.end()) return it->second;
  std::string chosen = stem + extension;
  const auto taken = [&](const std::string& candidate) {
    return taken_.count(candidate) != 0 || (taken_on_disk_ && taken_on_disk_(candidate + suffix));
  };
  for (int n = 2; taken(chosen); ++n) chosen = stem + "_" + std::to_string(n) + extension;
  taken_.insert(chosen);
  name_of_.emplace(source, chosen);
  return chosen;
}

cv::Mat tile_mosaic(const std::vector<cv::Mat>& frames, const std::vector<std::string>& labels, cv::Size tile) {
  const int n = std::max<int>(1, static_cast<int>(frames.size()));
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows = (n + cols - 1) / cols;
  cv::Mat mosaic(rows * tile.height, cols * tile.width, CV_8UC3, cv::Scalar(0, 0, 0));
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const cv::Rect cell(static_cast<int>(i) % cols * tile.width, static_cast<int>(i) / cols * tile.height, tile.width,
                        tile.height);
    cv::Mat target = mosaic(cell);
    const cv::Mat& frame = frames[i];
    if (!frame.empty()) {
      target.setTo(cv::Scalar(114, 114, 114));
      const double scale =
          std::min(static_cast<double>(tile.width) / frame.cols, static_cast<double>(tile.height) / frame.rows);
      const cv::Size size(std::max(1, static_cast<int>(std::lround(frame.cols * scale))),
                          std::max(1, static_cast<int>(std::lround(frame.rows * scale))));
      cv::Mat scaled;
      cv::resize(frame, scaled, size, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
      scaled.copyTo(
          target(cv::Rect((tile.width - size.width) / 2, (tile.height - size.height) / 2, size.width, size.height)));
    }
    if (i < labels.size() && !labels[i].empty()) {
      draw_label(target, labels[i], {0, 0}, cv::Scalar(0, 0, 0), std::max(0.4, tile.width / 1600.0), 1);
    }
  }
  return mosaic;
}

cv::Scalar class_colour(int cls) {
  // Sasha Trubetskoy's 20 distinct colours (RGB), stored as BGR.
  static constexpr std::array<std::array<int, 3>, 20> kRgb{{
      {230, 25, 75},   {60, 180, 75},   {255, 225, 25},  {0, 130, 200},   {245, 130, 48},
      {145, 30, 180},  {70, 240, 240},  {240, 50, 230},  {210, 245, 60},  {250, 190, 212},
      {0, 128, 128},   {220, 190, 255}, {170, 110, 40},  {255, 250, 200}, {128, 0, 0},
      {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128},     {128, 128, 128},
  }};
  const auto& rgb = kRgb[static_cast<std::size_t>(std::abs(cls)) % kRgb.size()];
  return {static_cast<double>(rgb[2]), static_cast<double>(rgb[1]), static_cast<double>(rgb[0])};
}

void draw_detections(cv::Mat& image, const Detections& detections, const std::vector<std::string>& names,
                     const std::string& status, const std::vector<std::string>& labels, int line_thickness) {
  const int side = std::max(image.cols, image.rows);
  const int line = line_thickness > 0 ? line_thickness : std::max(1, static_cast<int>(std::lround(side / 500.0)));
  const double scale = std::max(0.4, side / 1600.0);
  const int text_thickness = std::max(1, line / 2);
  for (std::size_t i = 0; i < detections.size(); ++i) {
    const auto& d = detections[i];
    const cv::Scalar colour = class_colour(d.cls);
    const cv::Point p1(static_cast<int>(std::lround(d.x1)), static_cast<int>(std::lround(d.y1)));
    const cv::Point p2(static_cast<int>(std::lround(d.x2)), static_cast<int>(std::lround(d.y2)));
    // LINE_8, not anti-aliased: the box keeps exactly class_colour(), which tests look for.
    cv::rectangle(image, p1, p2, colour, line, cv::LINE_8);
    const bool named = d.cls >= 0 && static_cast<std::size_t>(d.cls) < names.size();
    char conf[16];
    std::snprintf(conf, sizeof conf, " %.2f", d.conf);
    const std::string text =
        i < labels.size() ? labels[i] : (named ? names[static_cast<std::size_t>(d.cls)] : std::to_string(d.cls)) + conf;
    if (text.empty()) continue;
    int baseline = 0;
    const int label_h = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, text_thickness, &baseline).height +
                        baseline + 2 * std::max(2, text_thickness + 1);
    // Above the box when there is room, else just inside its top edge.
    const int top = p1.y - label_h >= 0 ? p1.y - label_h : p1.y;
    draw_label(image, text, {p1.x, top}, colour, scale, text_thickness);
  }
  if (!status.empty()) draw_label(image, status, {0, 0}, cv::Scalar(0, 0, 0), scale, text_thickness);
}

bool display_available() {
  if (const char* x11 = std::getenv("DISPLAY"); x11 && *x11) {
    // Ask Xlib itself (loaded at run time, so the build needs no X11 headers). It stays loaded: Qt uses it too.
    void* xlib = ::dlopen("libX11.so.6", RTLD_NOW | RTLD_LOCAL);
    if (!xlib) return false;
    using OpenDisplay = void* (*)(const char*);
    using CloseDisplay = int (*)(void*);
    const auto open = reinterpret_cast<OpenDisplay>(::dlsym(xlib, "XOpenDisplay"));
    const auto close = reinterpret_cast<CloseDisplay>(::dlsym(xlib, "XCloseDisplay"));
    if (!open || !close) return false;
    void* display = open(nullptr);
    if (!display) return false;
    close(display);
    return true;
  }
  // Qt 5 uses X11 unless told otherwise, so Wayland counts only when Qt is set to use it.
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  const char* platform = std::getenv("QT_QPA_PLATFORM");
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (!wayland || !*wayland || !platform || std::strncmp(platform, "wayland", 7) != 0 || !runtime) return false;
  std::error_code ec;
  return fs::exists(fs::path(runtime) / wayland, ec);
}

// --- Window ----------------------------------------------------------------------------------------------------------

Window::Window(std::string title) : title_(std::move(title)) {
  if (!display_available()) {
    throw OutputError(
        "cannot show a window: no display (DISPLAY is not set or its X server cannot be reached); "
        "run without --show, or under a desktop or Xvfb");
  }
  try {
    cv::namedWindow(title_, cv::WINDOW_AUTOSIZE | cv::WINDOW_KEEPRATIO | cv::WINDOW_GUI_NORMAL);
  } catch (const cv::Exception& e) {
    throw OutputError("cannot show a window: " + e.err);
  }
}

Window::~Window() {
  try {
    cv::destroyWindow(title_);
    cv::waitKey(1);
  } catch (const cv::Exception&) {
    // The window may already be gone with its display; nothing left to release.
  }
}

bool Window::show(const cv::Mat& image) {
  try {
    cv::imshow(title_, image);
    const int key = cv::waitKey(1) & 0xFF;
    if (key == 'q' || key == 'Q' || key == 27) return false;
    return cv::getWindowProperty(title_, cv::WND_PROP_VISIBLE) >= 1;
  } catch (const cv::Exception& e) {
    throw OutputError("cannot show a window: " + e.err);
  }
}

// --- VideoFileSink ---------------------------------------------------------------------------------------------------

struct VideoFileSink::Impl {
  cv::VideoWriter writer;
  int fourcc = 0;
  cv::Size size;
  bool closed = false;
};

VideoFileSink::VideoFileSink(std::string path, double fps) : impl_(std::make_unique<Impl>()), path_(std::move(path)) {
  set_fps(fps);
  const std::string what = "cannot write video " + path_;
  const std::string ext = lower(fs::path(path_).extension().string());
  if (ext == ".mp4" || ext == ".m4v" || ext == ".mov") {
    impl_->fourcc = cv::VideoWriter::fourcc('m', 'p', '4', 'v');
  } else if (ext == ".avi") {
    impl_->fourcc = cv::VideoWriter::fourcc('M', 'J', 'P', 'G');
  } else if (ext == ".mkv") {
    impl_->fourcc = cv::VideoWriter::fourcc('X', 'V', 'I', 'D');
  } else {
    throw OutputError(what + ": unsupported extension '" + ext + "' (use .mp4, .avi or .mkv)");
  }
  fs::path dir = fs::path(path_).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw OutputError(what + ": directory " + dir.string() + " does not exist");
  check_writable_dir(dir, what);
}

VideoFileSink::~VideoFileSink() {
  try {
    close();
  } catch (const OutputError&) {
    // A destructor cannot report; callers that care call close() themselves (detect does).
  }
}

void VideoFileSink::write(const cv::Mat& image) {
  if (impl_->closed) throw OutputError("cannot write video " + path_ + ": already closed");
  if (!impl_->writer.isOpened()) {
    impl_->size = image.size();
    try {
      impl_->writer.open(path_, impl_->fourcc, fps_, impl_->size);
    } catch (const cv::Exception&) {
      impl_->writer.release();
    }
    if (!impl_->writer.isOpened()) {
      throw OutputError("cannot write video " + path_ + " (" + std::to_string(impl_->size.width) + "x" +
                        std::to_string(impl_->size.height) + "): OpenCV could not open a writer for it");
    }
  }
  // Frames of other sizes (several sources into one video) are scaled to the first frame's size.
  try {
    if (image.size() == impl_->size) {
      impl_->writer.write(image);
    } else {
      cv::Mat scaled;
      cv::resize(image, scaled, impl_->size);
      impl_->writer.write(scaled);
    }
  } catch (const cv::Exception& e) {
    throw OutputError("cannot write video " + path_ + ": " + e.err);
  }
  ++frames_;
}

void VideoFileSink::set_fps(double fps) {
  if (impl_->writer.isOpened() || impl_->closed) return;
  fps_ = fps > 0 && fps <= 240 ? fps : 30.0;
}

void VideoFileSink::close() {
  if (impl_->closed) return;
  impl_->closed = true;
  const bool opened = impl_->writer.isOpened();
  try {
    impl_->writer.release();  // writes the container's index: the file is playable from here on
  } catch (const cv::Exception& e) {
    throw OutputError("cannot finish video " + path_ + ": " + e.err);
  }
  if (!opened) return;
  // The writer reports no write errors: read the file back. A full disk or a file size limit leaves a container
  // without its index (it does not open) or with fewer frames than were written.
  const std::int64_t in_file = frames_in_video(path_, frames_);
  if (in_file < 0) {
    throw OutputError("video " + path_ + " is not playable (its container was not finished: disk full or a file size " +
                      "limit?); 0 of " + std::to_string(frames_) + " frames made it");
  }
  if (in_file != frames_) {
    throw OutputError("video " + path_ + " is incomplete (disk full or a file size limit?): " +
                      std::to_string(in_file) + " of " + std::to_string(frames_) + " frames made it");
  }
}

// --- ImageDirSink ----------------------------------------------------------------------------------------------------

ImageDirSink::ImageDirSink(std::string dir, bool overwrite)
    : dir_(std::move(dir)), names_([folder = dir_, overwrite](const std::string& name) {
        std::error_code ec;
        return !overwrite && fs::exists(fs::path(folder) / name, ec);
      }) {
  const std::string what = "cannot save images to " + dir_;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (!fs::is_directory(dir_)) {
    throw OutputError(what + (ec ? ": " + ec.message() : std::string(": it is not a directory")));
  }
  check_writable_dir(dir_, what);
}

void ImageDirSink::write(const cv::Mat& image, const std::string& source, std::int64_t frame, bool single_image) {
  std::string name;
  if (single_image) {
    fs::path file = fs::path(source).filename();
    // PGM and PBM hold grey or 1-bit pixels; the annotated frame is in colour: it is saved as PNG.
    if (const auto ext = lower(file.extension().string()); ext == ".pgm" || ext == ".pbm")
      file.replace_extension(".png");
    name = names_.name_for(source, file.stem().string(), file.extension().string());
  } else {
    char number[24];
    std::snprintf(number, sizeof number, "_%06lld.jpg", static_cast<long long>(frame));
    name = names_.name_for(source, source_stem(source), "", number) + number;
  }
  const std::string path = (fs::path(dir_) / name).string();
  bool ok = false;
  try {
    ok = cv::imwrite(path, image);
  } catch (const cv::Exception&) {
    ok = false;
  }
  if (!ok) throw OutputError("cannot write image " + path);
}

// --- JsonLinesSink ---------------------------------------------------------------------------------------------------

JsonLinesSink::JsonLinesSink(const std::string& path) : path_(path) {
  if (path == "-") {
    file_ = stdout;
    return;
  }
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) throw OutputError("cannot write JSON lines to " + path + ": " + std::strerror(errno));
  owned_ = true;
}

JsonLinesSink::~JsonLinesSink() {
  if (owned_) std::fclose(file_);
}

void JsonLinesSink::write_line(const std::string& json) {
  std::string line = json;
  line += '\n';
  // One write per line, flushed at once: an interrupted run leaves whole lines only.
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    throw OutputError("cannot write JSON lines to " + (path_ == "-" ? std::string("stdout") : path_) + ": " +
                      std::strerror(errno));
  }
}

}  // namespace jitvision::io
