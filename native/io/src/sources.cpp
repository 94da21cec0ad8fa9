#include "jitvision/io/sources.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_file.hpp"
#include "jitvision/io/inputs.hpp"

namespace jitvision::io {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool is_stream_url(const std::string& spec) {
  static constexpr std::array<const char*, 10> kSchemes{"http",  "https", "rtsp", "rtsps", "rtmp",
                                                        "rtmps", "udp",   "tcp",  "rtp",   "srt"};
  const auto pos = spec.find("://");
  if (pos == std::string::npos) return false;
  const auto scheme = lower(spec.substr(0, pos));
  return std::find(kSchemes.begin(), kSchemes.end(), scheme) != kSchemes.end();
}

// "0".."99" or /dev/videoN; nullopt for anything else.
std::optional<int> camera_index(const std::string& spec) {
  static const std::string kDevice = "/dev/video";
  std::string digits = spec;
  if (spec.rfind(kDevice, 0) == 0) digits = spec.substr(kDevice.size());
  if (!all_digits(digits) || digits.size() > 2) return std::nullopt;
  return std::stoi(digits);
}

// URLs may carry "user:password@"; the password must not reach logs or JSON.
std::string redact_url(const std::string& url) {
  const auto start = url.find("://");
  if (start == std::string::npos) return url;
  const auto host_end = url.find('/', start + 3);
  const auto at = url.rfind('@', host_end);
  if (at == std::string::npos || at < start) return url;
  const auto colon = url.find(':', start + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

cv::Mat to_bgr(cv::Mat frame) {
  if (frame.channels() == 1) cv::cvtColor(frame, frame, cv::COLOR_GRAY2BGR);
  if (frame.channels() == 4) cv::cvtColor(frame, frame, cv::COLOR_BGRA2BGR);
  return frame;
}

double plausible_fps(const cv::VideoCapture& capture) {
  const double fps = capture.get(cv::CAP_PROP_FPS);
  return std::isfinite(fps) && fps > 0 && fps <= 240 ? fps : 0;
}

// --- video files: every frame, in order -----------------------------------------------------------------------------

class VideoFileSource final : public FrameSource {
 public:
  VideoFileSource(const std::string& path, bool known_extension) : path_(path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw InputError("video file " + path + " does not exist");
    try {
      // FFmpeg only: the GStreamer fallback prints its own warnings for files it cannot read either.
      capture_.open(path, cv::CAP_FFMPEG);
    } catch (const cv::Exception&) {
      capture_.release();
    }
    if (!capture_.isOpened()) {
      throw InputError(known_extension ? "video file " + path + " cannot be opened (corrupt, or a codec OpenCV lacks)"
                                       : path + " is neither an image nor a video OpenCV can read");
    }
    fps_ = plausible_fps(capture_);
  }

  std::optional<Frame> next() override {
    if (stopped_ || ended_) return std::nullopt;
    cv::Mat frame;
    bool ok = false;
    try {
      ok = capture_.read(frame) && !frame.empty();
    } catch (const cv::Exception&) {
      ok = false;
    }
    if (!ok) {
      ended_ = true;
      capture_.release();
      if (index_ == 0) throw InputError("video file " + path_ + " has no readable frames");
      return std::nullopt;
    }
    return Frame{to_bgr(frame), path_, index_++};
  }
  bool live() const override { return false; }
  double fps() const override { return fps_; }
  std::string describe() const override { return "video " + path_; }
  void stop() override { stopped_ = true; }

 private:
  std::string path_;
  cv::VideoCapture capture_;
  double fps_ = 0;
  std::int64_t index_ = 0;
  bool ended_ = false;
  std::atomic<bool> stopped_{false};
};

// --- image and video files from directories and globs ------------------------------------------------------------

class FileListSource final : public FrameSource {
 public:
  FileListSource(const std::string& spec, std::int64_t max_pixels)
      : spec_(spec), items_(expand_image_inputs({spec}, true)), max_pixels_(max_pixels) {}

  std::optional<Frame> next() override {
    while (!stopped_) {
      if (video_) {
        if (auto frame = video_->next()) return frame;
        video_.reset();
      }
      if (position_ >= items_.size()) return std::nullopt;
      const InputPath& item = items_[position_++];  // advanced first: a bad item is skipped by the next call
      if (!item.error.empty()) throw InputError(item.error);
      if (!has_video_extension(item.path)) return read_image(item.path);
      video_ = std::make_unique<VideoFileSource>(item.path, true);
    }
    return std::nullopt;
  }
  bool live() const override { return false; }
  double fps() const override { return 0; }
  std::string describe() const override { return "files " + spec_; }
  void stop() override { stopped_ = true; }

 private:
  // A file that is there but cannot be decoded is one bad frame: the list goes on.
  Frame read_image(const std::string& path) const {
    try {
      return Frame{read_image_bgr(path, max_pixels_), path, 0};
    } catch (const InputError& e) {
      throw FrameError(path, 0, e.what());
    }
  }

  std::string spec_;
  std::vector<InputPath> items_;
  std::int64_t max_pixels_;
  std::size_t position_ = 0;
  std::unique_ptr<VideoFileSource> video_;  // the video of the list being read
  std::atomic<bool> stopped_{false};
};

// --- live sources: a grabber thread keeps only the newest frame -----------------------------------------------------

using Opener = std::function<std::unique_ptr<cv::VideoCapture>()>;  // nullptr when the source cannot be opened

// A backend call (open or read) that has not returned this long after its own timeout is taken as hung: some
// backends (GStreamer in OpenCV 4.6) have no read timeout at all.
constexpr Seconds kHungGrace{1.0};

std::string seconds_text(Seconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", duration.count());
  return text;
}

// Owned jointly by the source and its grabber thread, so a thread stuck in a backend call can be left behind safely.
struct Grabber {
  Grabber(std::string label_, Opener open_, SourceOptions options_, int read_limit_ms_,
          std::unique_ptr<cv::VideoCapture> first)
      : label(std::move(label_)),
        open(std::move(open_)),
        options(options_),
        read_limit_ms(read_limit_ms_),
        capture(std::move(first)) {}

  const std::string label;
  const Opener open;
  const SourceOptions options;
  const int read_limit_ms;                    // the longest a read may block in this backend
  std::unique_ptr<cv::VideoCapture> capture;  // touched by the grabber thread only

  std::mutex mutex;
  std::condition_variable changed;
  cv::Mat latest;
  std::int64_t captured = 0;  // frames captured so far; the newest has index captured - 1
  bool stopping = false;
  bool finished = false;  // the thread is done: stopped, or `lost` is set
  std::string lost;       // set when the reconnect budget is spent
  Clock::time_point call_started;
  std::optional<Clock::time_point> call_limit;  // while in a backend call: when it should have returned

  // Runs a backend call with its deadline published, so next() can tell a hung backend from a slow one.
  template <typename Call>
  auto timed_call(int timeout_ms, Call call) {
    {
      std::lock_guard lock(mutex);
      call_started = Clock::now();
      call_limit = call_started + std::chrono::milliseconds(timeout_ms) +
                   std::chrono::duration_cast<Clock::duration>(kHungGrace);
    }
    auto result = call();
    std::lock_guard lock(mutex);
    call_limit.reset();
    return result;
  }

  bool read_frame(cv::Mat& frame) {
    return timed_call(read_limit_ms, [&] {
      try {
        return capture->read(frame) && !frame.empty();
      } catch (const cv::Exception&) {
        return false;
      }
    });
  }

  // Sleeps for the back-off; false when stopped meanwhile.
  bool wait_backoff(int attempt) {
    const double delay = std::min(options.backoff_initial_s * std::pow(2.0, attempt), options.backoff_max_s);
    std::unique_lock lock(mutex);
    return !changed.wait_for(lock, Seconds(std::max(0.0, delay)), [&] { return stopping; });
  }

  void run() {
    auto last_frame = Clock::now();
    int attempts = 0;  // reconnect attempts since the last frame
    while (true) {
      cv::Mat frame;  // a fresh buffer each time: the consumer may still hold the previous one
      const bool ok = read_frame(frame);
      if (ok) frame = to_bgr(frame);
      {
        std::lock_guard lock(mutex);
        if (stopping) break;
        if (ok) {
          latest = frame;
          ++captured;
          attempts = 0;
          last_frame = Clock::now();
          changed.notify_all();
          continue;
        }
      }
      capture.reset();
      while (!capture) {
        if (attempts >= options.reconnect) {
          const auto silent = seconds_text(Clock::now() - last_frame);
          std::lock_guard lock(mutex);
          lost = label + " lost: no frame for " + silent + " after " + std::to_string(attempts) + " reconnect attempt" +
                 (attempts == 1 ? "" : "s");
          break;
        }
        if (!wait_backoff(attempts)) break;
        ++attempts;
        capture = timed_call(options.open_timeout_ms, open);
      }
      if (!capture) break;
    }
    capture.reset();
    std::lock_guard lock(mutex);
    finished = true;
    changed.notify_all();
  }
};

class LiveSource final : public FrameSource {
 public:
  LiveSource(std::string label, std::string source, Opener open, const SourceOptions& options, int read_limit_ms,
             std::unique_ptr<cv::VideoCapture> first)
      : source_(std::move(source)), fps_(plausible_fps(*first)) {
    grabber_ = std::make_shared<Grabber>(std::move(label), std::move(open), options, read_limit_ms, std::move(first));
    thread_ = std::thread([g = grabber_] { g->run(); });
  }

  ~LiveSource() override {
    stop();
    std::unique_lock lock(grabber_->mutex);
    // A backend call in progress returns within its timeout; only a hung one is left behind (detached).
    const auto deadline =
        grabber_->call_limit.value_or(Clock::now() + std::chrono::duration_cast<Clock::duration>(kHungGrace));
    const bool done = grabber_->changed.wait_until(lock, deadline, [&] { return grabber_->finished; });
    lock.unlock();
    if (done) {
      thread_.join();
    } else {
      thread_.detach();
    }
  }

  std::optional<Frame> next() override {
    Grabber& g = *grabber_;
    std::unique_lock lock(g.mutex);
    while (true) {
      if (g.stopping) return std::nullopt;
      if (g.captured > returned_) {
        returned_ = g.captured;
        return Frame{g.latest, source_, g.captured - 1};
      }
      if (!g.lost.empty()) throw SourceLostError(g.lost);
      if (g.call_limit && Clock::now() >= *g.call_limit) {
        throw SourceLostError(g.label + " lost: the capture backend hung (no return for " +
                              seconds_text(Clock::now() - g.call_started) + ")");
      }
      g.changed.wait_for(lock, std::chrono::milliseconds(50));
    }
  }
  bool live() const override { return true; }
  double fps() const override { return fps_; }
  std::string describe() const override { return grabber_->label; }
  void stop() override {
    std::lock_guard lock(grabber_->mutex);
    grabber_->stopping = true;
    grabber_->changed.notify_all();
  }

 private:
  std::string source_;
  double fps_;
  std::shared_ptr<Grabber> grabber_;
  std::thread thread_;
  std::int64_t returned_ = 0;  // `captured` when next() last returned a frame
};

std::unique_ptr<cv::VideoCapture> open_capture(const std::function<void(cv::VideoCapture&)>& open) {
  auto capture = std::make_unique<cv::VideoCapture>();
  try {
    open(*capture);
  } catch (const cv::Exception&) {
    return nullptr;
  }
  if (!capture->isOpened()) return nullptr;
  return capture;
}

// The first open runs on its own thread, so a backend that never returns (a GStreamer pipeline that never
// prerolls) cannot hang the caller: after open_timeout + kHungGrace it is left behind, and this throws.
std::unique_ptr<cv::VideoCapture> open_first(const Opener& open, const SourceOptions& options,
                                             const std::string& label) {
  struct Attempt {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<std::unique_ptr<cv::VideoCapture>> capture;
  };
  auto attempt = std::make_shared<Attempt>();
  std::thread([attempt, open] {
    auto capture = open();
    std::lock_guard lock(attempt->mutex);
    attempt->capture = std::move(capture);
    attempt->done.notify_all();
  }).detach();
  const auto limit =
      std::chrono::milliseconds(options.open_timeout_ms) + std::chrono::duration_cast<Clock::duration>(kHungGrace);
  std::unique_lock lock(attempt->mutex);
  if (!attempt->done.wait_for(lock, limit, [&] { return attempt->capture.has_value(); })) {
    throw InputError(label + " did not open within " + seconds_text(limit));
  }
  return std::move(*attempt->capture);
}

std::unique_ptr<FrameSource> open_live(const std::string& label, const std::string& source, const Opener& open,
                                       const SourceOptions& options, int read_limit_ms, const std::string& failure) {
  auto first = open_first(open, options, label);
  if (!first) throw InputError(failure);
  return std::make_unique<LiveSource>(label, source, open, options, read_limit_ms, std::move(first));
}

constexpr const char* kV4l2WaitVariable = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT";

std::unique_ptr<FrameSource> open_camera(int index, const SourceOptions& options) {
  const std::string label = "camera " + std::to_string(index);
  const Opener open = [index] { return open_capture([&](cv::VideoCapture& c) { c.open(index, cv::CAP_V4L2); }); };
  std::error_code ec;
  const std::string device = "/dev/video" + std::to_string(index);
  const std::string why = fs::exists(device, ec) ? "busy, or not a capture device" : "no " + device;
  // V4L2 waits for a frame as long as configure_capture_backends() set, or its default of 10 s.
  const char* wait = std::getenv(kV4l2WaitVariable);
  const int wait_ms = (wait && std::atoi(wait) > 0 ? std::atoi(wait) : 10) * 1000;
  return open_live(label, std::to_string(index), open, options, std::max(options.read_timeout_ms, wait_ms),
                   label + " cannot be opened (" + why + ")");
}

std::unique_ptr<FrameSource> open_stream(const std::string& url, const SourceOptions& options) {
  const std::string shown = redact_url(url);
  const std::vector<int> params{cv::CAP_PROP_OPEN_TIMEOUT_MSEC, options.open_timeout_ms, cv::CAP_PROP_READ_TIMEOUT_MSEC,
                                options.read_timeout_ms};
  const Opener open = [url, params] {
    return open_capture([&](cv::VideoCapture& c) { c.open(url, cv::CAP_FFMPEG, params); });
  };
  return open_live("stream " + shown, shown, open, options, options.read_timeout_ms,
                   "stream " + shown + " cannot be opened within " + std::to_string(options.open_timeout_ms) +
                       " ms (unreachable, refused, or not a video stream)");
}

std::unique_ptr<FrameSource> open_pipeline(const std::string& pipeline, const SourceOptions& options) {
  const std::string label = "GStreamer pipeline '" + pipeline + "'";
  if (!cv::videoio_registry::hasBackend(cv::CAP_GSTREAMER)) {
    throw InputError(label + " cannot be opened: this OpenCV has no GStreamer support");
  }
  // OpenCV 4.6's GStreamer backend rejects timeout parameters; the grabber's watchdog bounds its calls instead.
  const Opener open = [pipeline] {
    return open_capture([&](cv::VideoCapture& c) { c.open(pipeline, cv::CAP_GSTREAMER); });
  };
  return open_live(label, pipeline, open, options, options.read_timeout_ms,
                   label +
                       " cannot be started (unknown element, bad property, or no appsink at the end; "
                       "check it with gst-launch-1.0)");
}

}  // namespace

void configure_capture_backends(const SourceOptions& options) {
  const int seconds = std::max(1, (options.read_timeout_ms + 999) / 1000);
  ::setenv(kV4l2WaitVariable, std::to_string(seconds).c_str(), 0);
}

SourceKind classify_source(const std::string& spec) {
  if (is_stream_url(spec)) return SourceKind::NetworkStream;
  if (camera_index(spec)) return SourceKind::Camera;
  std::error_code ec;
  if (fs::exists(spec, ec)) {
    if (fs::is_directory(spec, ec) || has_image_extension(spec)) return SourceKind::ImageFiles;
    // A FIFO or device is refused by the file list (reading it could block forever), whatever its name.
    if (!fs::is_regular_file(spec, ec)) return SourceKind::ImageFiles;
    if (has_video_extension(spec)) return SourceKind::VideoFile;
    // Unknown extension: decide by the file's signature.
    return cv::haveImageReader(spec) ? SourceKind::ImageFiles : SourceKind::VideoFile;
  }
  const bool file_name = has_image_extension(spec) || has_video_extension(spec);
  if (spec.find('!') != std::string::npos && !file_name) return SourceKind::GStreamerPipeline;
  if (has_video_extension(spec)) return SourceKind::VideoFile;
  return SourceKind::ImageFiles;  // globs, and missing paths (reported by next())
}

std::unique_ptr<FrameSource> open_source(const std::string& spec, const SourceOptions& options) {
  switch (classify_source(spec)) {
    case SourceKind::ImageFiles:
      return std::make_unique<FileListSource>(spec, options.max_pixels);
    case SourceKind::VideoFile:
      return std::make_unique<VideoFileSource>(spec, has_video_extension(spec));
    case SourceKind::Camera:
      return open_camera(*camera_index(spec), options);
    case SourceKind::NetworkStream:
      return open_stream(spec, options);
    case SourceKind::GStreamerPipeline:
      return open_pipeline(spec, options);
  }
  throw InputError("source " + spec + " is of no known kind");
}

}  // namespace jitvision::io
