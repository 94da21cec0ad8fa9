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
#include <deque>
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

double wall_clock_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string seconds_text(Seconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", duration.count());
  return text;
}

// The back-off before reopen attempt `attempt` (from 0): backoff_initial_s, doubling up to backoff_max_s.
Seconds backoff_delay(const SourceOptions& options, int attempt) {
  return Seconds(std::max(0.0, std::min(options.backoff_initial_s * std::pow(2.0, attempt), options.backoff_max_s)));
}

void tell(const SourceOptions& options, const std::string& line) {
  if (options.notice) options.notice(line);
}

// --- video files and finite pipelines: every frame, in order, until the end of the stream ---------------------------

class SequentialSource final : public FrameSource {
 public:
  // `positioned`: frames carry their stream position (video files). `empty`: the error when not one frame is read.
  SequentialSource(std::string label, std::string source, std::unique_ptr<cv::VideoCapture> capture, bool positioned,
                   std::string empty)
      : label_(std::move(label)),
        source_(std::move(source)),
        capture_(std::move(capture)),
        positioned_(positioned),
        empty_(std::move(empty)),
        fps_(plausible_fps(*capture_)) {}

  std::optional<Frame> next() override {
    if (stopped_ || !capture_) return std::nullopt;
    cv::Mat frame;
    bool ok = false;
    double position = -1;
    try {
      ok = capture_->read(frame) && !frame.empty();
      if (ok && positioned_) position = std::max(0.0, capture_->get(cv::CAP_PROP_POS_MSEC));
    } catch (const cv::Exception&) {
      ok = false;
    }
    if (!ok) {
      capture_.reset();
      if (read_ == 0) throw InputError(empty_);
      return std::nullopt;
    }
    const std::int64_t index = read_++;
    return Frame{to_bgr(frame), source_, index, 0, position, wall_clock_s()};
  }
  bool live() const override { return false; }
  double fps() const override { return fps_; }
  std::string describe() const override { return label_; }
  SourceStats stats() const override { return {read_.load(), 0, 0, fps_}; }
  void stop() override { stopped_ = true; }

 private:
  std::string label_;
  std::string source_;
  std::unique_ptr<cv::VideoCapture> capture_;  // reset at the end
  bool positioned_;
  std::string empty_;
  double fps_;
  std::atomic<std::int64_t> read_{0};
  std::atomic<bool> stopped_{false};
};

std::unique_ptr<FrameSource> open_video_file(const std::string& path, bool known_extension) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError("video file " + path + " does not exist");
  auto capture = std::make_unique<cv::VideoCapture>();
  try {
    // FFmpeg only: the GStreamer fallback prints its own warnings for files it cannot read either.
    capture->open(path, cv::CAP_FFMPEG);
  } catch (const cv::Exception&) {
    capture->release();
  }
  if (!capture->isOpened()) {
    throw InputError(known_extension ? "video file " + path + " cannot be opened (corrupt, or a codec OpenCV lacks)"
                                     : path + " is neither an image nor a video OpenCV can read");
  }
  return std::make_unique<SequentialSource>("video " + path, path, std::move(capture), true,
                                            "video file " + path + " has no readable frames");
}

// --- image and video files from directories and globs ------------------------------------------------------------

class FileListSource final : public FrameSource {
 public:
  FileListSource(const std::string& spec, std::int64_t max_pixels)
      : spec_(spec), items_(expand_image_inputs({spec}, true)), max_pixels_(max_pixels) {}

  std::optional<Frame> next() override {
    while (!stopped_) {
      if (video_) {
        if (auto frame = video_->next()) {
          ++read_;
          return frame;
        }
        video_.reset();
      }
      if (position_ >= items_.size()) return std::nullopt;
      const InputPath& item = items_[position_++];  // advanced first: a bad item is skipped by the next call
      if (!item.error.empty()) throw InputError(item.error);
      if (!has_video_extension(item.path)) {
        auto frame = read_image(item.path);
        ++read_;
        return frame;
      }
      video_ = open_video_file(item.path, true);
    }
    return std::nullopt;
  }
  bool live() const override { return false; }
  double fps() const override { return 0; }
  std::string describe() const override { return "files " + spec_; }
  SourceStats stats() const override { return {read_.load(), 0, 0, 0}; }
  void stop() override { stopped_ = true; }

 private:
  // A file that is there but cannot be decoded is one bad frame: the list goes on.
  Frame read_image(const std::string& path) const {
    try {
      return Frame{read_image_bgr(path, max_pixels_), path, 0, 0, -1, wall_clock_s()};
    } catch (const InputError& e) {
      throw FrameError(path, 0, e.what());
    }
  }

  std::string spec_;
  std::vector<InputPath> items_;
  std::int64_t max_pixels_;
  std::size_t position_ = 0;
  std::unique_ptr<FrameSource> video_;  // the video of the list being read
  std::atomic<std::int64_t> read_{0};
  std::atomic<bool> stopped_{false};
};

// --- live sources: a grabber thread keeps only the newest frame -----------------------------------------------------

using Opener = std::function<std::unique_ptr<cv::VideoCapture>()>;  // nullptr when the source cannot be opened

// A backend call (open or read) that has not returned this long after its own timeout is taken as hung: some
// backends (GStreamer in OpenCV 4.6) have no read timeout at all.
constexpr Seconds kHungGrace{1.0};
// A live source's frame rate is its arrival rate over this window.
constexpr Seconds kRateWindow{2.0};

// Owned jointly by the source and its grabber thread, so a thread stuck in a backend call can be left behind safely.
struct Grabber {
  Grabber(std::string label_, Opener open_, SourceOptions options_, int read_limit_ms_, std::string failure_)
      : label(std::move(label_)),
        open(std::move(open_)),
        options(std::move(options_)),
        read_limit_ms(read_limit_ms_),
        failure(std::move(failure_)) {}

  const std::string label;
  const Opener open;
  const SourceOptions options;
  const int read_limit_ms;                    // the longest a read may block in this backend
  const std::string failure;                  // why an open failed, as the user is told
  std::unique_ptr<cv::VideoCapture> capture;  // touched by the grabber thread only

  std::mutex mutex;
  std::condition_variable changed;
  cv::Mat latest;
  double latest_time = 0;     // when `latest` was captured (wall clock)
  std::int64_t captured = 0;  // frames captured so far; the newest has index captured - 1
  std::int64_t dropped = 0;   // frames replaced by a newer one before next() took them (counted by next())
  std::int64_t reconnects = 0;
  std::deque<Clock::time_point> arrivals;  // frame arrivals within the last kRateWindow
  bool stopping = false;
  bool finished = false;     // the thread is done: stopped, or `lost` is set
  std::string lost;          // set when the reconnect budget is spent
  bool opened = false;       // the first open succeeded
  std::string never_opened;  // set when every first-open attempt failed
  double nominal_fps = 0;    // the backend's rate, known once opened
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
    std::unique_lock lock(mutex);
    return !changed.wait_for(lock, backoff_delay(options, attempt), [&] { return stopping; });
  }

  // Called with the mutex held.
  void store(cv::Mat frame) {
    latest = std::move(frame);
    latest_time = wall_clock_s();
    ++captured;
    const auto now = Clock::now();
    arrivals.push_back(now);
    while (now - arrivals.front() > kRateWindow) arrivals.pop_front();
    changed.notify_all();
  }

  // Frames per second over the last kRateWindow; 0 before two frames. Called with the mutex held.
  double arrival_rate() const {
    if (arrivals.size() < 2) return 0;
    const double span = Seconds(arrivals.back() - arrivals.front()).count();
    return span > 0 ? static_cast<double>(arrivals.size() - 1) / span : 0;
  }

  // After a drop: reopens with back-off, counting attempts since the last frame in `attempts`. False when stopped,
  // or when the budget is spent (then `lost` says so).
  bool reconnect(Clock::time_point last_frame, int& attempts) {
    capture.reset();
    tell(options, label + " dropped (no frame for " + seconds_text(Clock::now() - last_frame) + "); reconnecting");
    while (attempts < options.reconnect) {
      if (!wait_backoff(attempts)) return false;
      ++attempts;
      capture = timed_call(options.open_timeout_ms, open);
      if (capture) {
        {
          std::lock_guard lock(mutex);
          ++reconnects;
        }
        tell(options, label + " reconnected (attempt " + std::to_string(attempts) + " of " +
                          std::to_string(options.reconnect) + ")");
        return true;
      }
    }
    const auto silent = seconds_text(Clock::now() - last_frame);
    std::lock_guard lock(mutex);
    lost = label + " lost: no frame for " + silent + " after " + std::to_string(attempts) + " reconnect attempt" +
           (attempts == 1 ? "" : "s");
    return false;
  }

  // The first open, retried on the reconnect budget (a camera plugged in late, a server that starts after us), one
  // notice per failed attempt. False when stopped, or when every attempt failed (then `never_opened` says so).
  bool open_first() {
    for (int attempt = 0;; ++attempt) {
      capture = timed_call(options.open_timeout_ms, open);
      if (capture) {
        {
          std::lock_guard lock(mutex);
          opened = true;
          nominal_fps = plausible_fps(*capture);
        }
        if (attempt > 0) tell(options, label + " opened (attempt " + std::to_string(attempt + 1) + ")");
        return true;
      }
      if (attempt >= options.reconnect) {
        std::lock_guard lock(mutex);
        never_opened = attempt == 0 ? failure : failure + " (" + std::to_string(attempt + 1) + " attempts)";
        changed.notify_all();
        return false;
      }
      tell(options, label + " cannot be opened yet; retrying in " + seconds_text(backoff_delay(options, attempt)) +
                        " (retry " + std::to_string(attempt + 1) + " of " + std::to_string(options.reconnect) + ")");
      if (!wait_backoff(attempt)) return false;
    }
  }

  // Reads until stopped, reconnecting after each drop, until the reconnect budget is spent.
  void read_frames() {
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
          store(std::move(frame));
          attempts = 0;
          last_frame = Clock::now();
          continue;
        }
      }
      if (!reconnect(last_frame, attempts)) break;
    }
  }

  void run() {
    if (open_first()) read_frames();
    capture.reset();
    std::lock_guard lock(mutex);
    finished = true;
    changed.notify_all();
  }
};

class LiveSource final : public FrameSource {
 public:
  // Returns at once: the grabber thread opens the source (see Grabber::open_first).
  LiveSource(std::string label, std::string source, Opener open, const SourceOptions& options, int read_limit_ms,
             std::string failure)
      : source_(std::move(source)) {
    grabber_ = std::make_shared<Grabber>(std::move(label), std::move(open), options, read_limit_ms, std::move(failure));
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
        g.dropped += g.captured - returned_ - 1;
        returned_ = g.captured;
        return Frame{g.latest, source_, g.captured - 1, 0, -1, g.latest_time};
      }
      if (!g.lost.empty()) throw SourceLostError(g.lost);
      const bool hung = g.call_limit && Clock::now() >= *g.call_limit;
      if (!g.opened && (hung || !g.never_opened.empty())) {  // never opened: told once, then the source has ended
        if (never_opened_told_) return std::nullopt;
        never_opened_told_ = true;
        if (!hung) throw InputError(g.never_opened);
        throw InputError(g.label + " did not open within " + seconds_text(*g.call_limit - g.call_started));
      }
      if (hung) {
        throw SourceLostError(g.label + " lost: the capture backend hung (no return for " +
                              seconds_text(Clock::now() - g.call_started) + ")");
      }
      g.changed.wait_for(lock, std::chrono::milliseconds(50));
    }
  }
  bool live() const override { return true; }
  double fps() const override {
    std::lock_guard lock(grabber_->mutex);
    return grabber_->nominal_fps;
  }
  std::string describe() const override { return grabber_->label; }
  SourceStats stats() const override {
    std::lock_guard lock(grabber_->mutex);
    return {grabber_->captured, grabber_->dropped, grabber_->reconnects, grabber_->arrival_rate()};
  }
  void stop() override {
    std::lock_guard lock(grabber_->mutex);
    grabber_->stopping = true;
    grabber_->changed.notify_all();
  }

 private:
  std::string source_;
  std::shared_ptr<Grabber> grabber_;
  std::thread thread_;
  std::int64_t returned_ = 0;  // `captured` when next() last returned a frame
  bool never_opened_told_ = false;
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

// An open on its own thread, so a backend that never returns (a GStreamer pipeline that never prerolls) cannot hang
// the caller: after open_timeout + kHungGrace it is left behind, and this throws.
std::unique_ptr<cv::VideoCapture> open_bounded(const Opener& open, const SourceOptions& options,
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
  return std::make_unique<LiveSource>(label, source, open, options, read_limit_ms, failure);
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

// The factory name of a pipeline's first element: "videotestsrc num-buffers=30 ! ..." -> "videotestsrc".
std::string first_element(const std::string& pipeline) {
  const auto begin = pipeline.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = pipeline.find_first_of(" \t!", begin);
  return lower(pipeline.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
}

// See is_live_source(): a pipeline that reads files or makes test frames ends at its EOS; anything else (and a first
// element with is-live=true) is a camera or a network source whose EOS is a drop.
bool finite_pipeline(const std::string& pipeline) {
  static constexpr std::array<const char*, 6> kFinite{"filesrc",          "multifilesrc", "splitmuxsrc",
                                                      "imagesequencesrc", "videotestsrc", "appsrc"};
  static constexpr std::array<const char*, 5> kUriReaders{"uridecodebin", "uridecodebin3", "urisourcebin", "playbin",
                                                          "playbin3"};
  const std::string element = first_element(pipeline);
  const std::string text = lower(pipeline.substr(0, pipeline.find('!')));  // the first element and its properties
  if (text.find("is-live=true") != std::string::npos || text.find("is-live=1") != std::string::npos) return false;
  if (std::find(kFinite.begin(), kFinite.end(), element) != kFinite.end()) return true;
  if (std::find(kUriReaders.begin(), kUriReaders.end(), element) == kUriReaders.end()) return false;
  return text.find("uri=file://") != std::string::npos || text.find("uri=\"file://") != std::string::npos;
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
  const std::string failure = label +
                              " cannot be started (unknown element, bad property, or no appsink at the end; "
                              "check it with gst-launch-1.0)";
  if (!finite_pipeline(pipeline)) return open_live(label, pipeline, open, options, options.read_timeout_ms, failure);
  auto capture = open_bounded(open, options, label);
  if (!capture) throw InputError(failure);
  return std::make_unique<SequentialSource>(label, pipeline, std::move(capture), false,
                                            label + " ended before its first frame");
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

bool is_live_source(const std::string& spec) {
  switch (classify_source(spec)) {
    case SourceKind::Camera:
    case SourceKind::NetworkStream:
      return true;
    case SourceKind::GStreamerPipeline:
      return !finite_pipeline(spec);
    default:
      return false;
  }
}

std::unique_ptr<FrameSource> open_source(const std::string& spec, const SourceOptions& options) {
  switch (classify_source(spec)) {
    case SourceKind::ImageFiles:
      return std::make_unique<FileListSource>(spec, options.max_pixels);
    case SourceKind::VideoFile:
      return open_video_file(spec, has_video_extension(spec));
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
