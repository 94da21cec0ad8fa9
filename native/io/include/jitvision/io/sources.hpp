#pragma once
// Frame sources: image files, directories, globs, video files, cameras, network streams, GStreamer pipelines.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <opencv2/core/mat.hpp>

#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_header.hpp"

namespace jitvision::io {

struct Frame {
  cv::Mat image;            // 8-bit BGR
  std::string source;       // the file path, or the source spec for video/live sources
  std::int64_t index = 0;   // frame number within its source, from 0 (counts every frame captured, kept or not)
  int source_id = 0;        // the source's position in the run's source list, from 0 (set by the pipeline)
  double position_ms = -1;  // video files: the frame's position in the stream (ms); -1 when there is none
  double timestamp = 0;     // wall-clock capture time, seconds since the Unix epoch (0: not set)
};

// What a source has done so far (FrameSource::stats); the per-source summary prints it.
struct SourceStats {
  std::int64_t read = 0;        // frames delivered by the backend
  std::int64_t dropped = 0;     // live sources: frames replaced by a newer one before anyone took them
  std::int64_t reconnects = 0;  // reopens after a drop that succeeded
  double fps = 0;               // measured arrival rate (live sources) or the nominal rate (files); 0: unknown
};

// Live sources: a read that fails, or returns nothing for read_timeout_ms, drops the connection; it is reopened after
// backoff_initial_s, doubling up to backoff_max_s, at most `reconnect` times in a row (a frame resets the count).
// Then next() throws SourceLostError. From the last frame, that takes at most about
//   read_timeout + sum of the back-offs + reconnect x (open_timeout + read_timeout)
// (a dead server refuses at once, so usually just the back-offs). Backends: FFmpeg (URLs) gets both timeouts as
// open parameters; V4L2 (cameras) waits 10 s per frame unless configure_capture_backends() ran; GStreamer in
// OpenCV 4.6 takes no timeouts, so a backend call that has not returned 1 s after its timeout makes next() throw
// SourceLostError. A live source opens on its grabber thread (open_source() returns at once, and stop() interrupts
// the wait): the first open is retried on the same budget (back-off, `reconnect` retries); when every attempt failed
// (or one did not return within open_timeout + 1 s), next() throws InputError once, and the source has ended.
// Files and finite pipelines (is_live_source) are opened by open_source(): failing, it throws InputError at once.
struct SourceOptions {
  int open_timeout_ms = 10000;  // opening a network stream
  int read_timeout_ms = 5000;   // a live source delivering no frame for this long counts as dropped
  int reconnect = 5;            // reopen attempts after a live source drops (0: give up at once)
  double backoff_initial_s = 0.5;
  double backoff_max_s = 8.0;
  std::int64_t max_pixels = kDefaultMaxPixels;  // image files: larger ones are skipped undecoded (--max-pixels)
  // Gets one line for each drop, failed open and reconnect of a live source (from its grabber thread, so it must be
  // thread-safe); empty: nothing is told (--quiet).
  std::function<void(const std::string&)> notice;
};

// One frame that cannot be used (an image file that cannot be decoded or is too large, a frame that cannot be
// letterboxed): the frame is skipped, not its source. Its message names the frame and says why.
class FrameError : public InputError {
 public:
  FrameError(std::string source, std::int64_t index, const std::string& message)
      : InputError(message), source_(std::move(source)), index_(index) {}
  const std::string& source() const noexcept { return source_; }
  std::int64_t index() const noexcept { return index_; }

 private:
  std::string source_;
  std::int64_t index_;
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame, or nullopt at the end of input (or after stop()). Throws InputError for one unusable item
  // of an image list (the next call goes on with the following item): FrameError for a file that cannot be
  // decoded, InputError for an argument that names nothing readable (missing, not a regular file), or a live
  // source that could not be opened (the next call returns nullopt). Throws
  // SourceLostError when a live source is gone and did not come back within the reconnect budget.
  virtual std::optional<Frame> next() = 0;
  // Live sources (cameras, streams, pipelines) keep only the newest frame, so a slow consumer never lags.
  virtual bool live() const = 0;
  // Nominal frame rate when known (video files, cameras), else 0.
  virtual double fps() const = 0;
  virtual std::string describe() const = 0;
  // Counters so far; callable from another thread.
  virtual SourceStats stats() const { return {}; }
  // Makes a blocked next() return nullopt at once; callable from another thread. A live source's destructor joins
  // its grabber thread, which may be inside a read or a reopen: that takes at most read_timeout or open_timeout
  // (a hung GStreamer call is left behind, detached, instead).
  virtual void stop() = 0;
};

// Process-wide backend settings that OpenCV reads only once: makes V4L2 wait ceil(read_timeout) s for a camera frame
// instead of 10 s (the OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT environment variable, unless set already). Call it from
// main() before starting threads: it changes the environment. open_source() works without it.
void configure_capture_backends(const SourceOptions& options);

// What a --source string names, decided without opening it: URL scheme (http, https, rtsp, rtsps, rtmp, rtmps, udp,
// tcp, rtp, srt), camera ("0".."99", /dev/videoN), existing directory or image/video file by extension (unknown
// extension: by the file's signature), a string with '!' that does not end in an image or video extension
// (pipeline; "missing!.jpg" is a missing file), a video extension, else ImageFiles: image
// files, and directories and globs, whose image and video files are all read, in name order.
enum class SourceKind { ImageFiles, VideoFile, Camera, NetworkStream, GStreamerPipeline };
SourceKind classify_source(const std::string& spec);

// A source that keeps only its newest frame and reconnects when it drops: cameras, network streams and GStreamer
// pipelines whose first element is not a finite one. A pipeline starting with filesrc, multifilesrc, splitmuxsrc,
// imagesequencesrc, videotestsrc or appsrc (or a uridecodebin/playbin with a file:// URI), without is-live=true, is
// finite: it is read frame by frame like a video file and ends at its end of stream (OpenCV reports EOS and an error
// alike, so the pipeline's first element decides).
bool is_live_source(const std::string& spec);

// Opens a --source argument: "0" (camera index, V4L2), http(s)/rtsp/rtmp/udp/tcp URLs, GStreamer pipeline strings
// (containing '!'), video files, image files, directories and globs. Throws InputError when a file or a finite
// pipeline cannot be opened, or GStreamer is missing; live sources open in the background (see SourceOptions).
std::unique_ptr<FrameSource> open_source(const std::string& spec, const SourceOptions& options);

}  // namespace jitvision::io
