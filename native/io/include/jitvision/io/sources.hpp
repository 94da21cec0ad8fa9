#pragma once
// Frame sources: image files, directories, globs, video files, cameras, network streams, GStreamer pipelines.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <opencv2/core/mat.hpp>

namespace jitvision::io {

struct Frame {
  cv::Mat image;            // 8-bit BGR
  std::string source;       // the file path, or the source spec for video/live sources
  std::int64_t index = 0;   // frame number within its source, from 0 (counts every frame captured, kept or not)
};

struct SourceOptions {
  int open_timeout_ms = 10000;   // opening a network stream
  int read_timeout_ms = 5000;    // a live source delivering no frame for this long counts as dropped
  int reconnect = 5;             // reopen attempts after a live source drops (0: give up at once)
  double backoff_initial_s = 0.5;
  double backoff_max_s = 8.0;
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame, or nullopt at the end of input (or after stop()). Throws InputError for one unreadable item
  // of an image list (the next call goes on with the following item) and SourceLostError when a live source is
  // gone and did not come back within the reconnect budget.
  virtual std::optional<Frame> next() = 0;
  // Live sources (cameras, streams, pipelines) keep only the newest frame, so a slow consumer never lags.
  virtual bool live() const = 0;
  // Nominal frame rate when known (video files, cameras), else 0.
  virtual double fps() const = 0;
  virtual std::string describe() const = 0;
  // Makes a blocked next() return nullopt soon; callable from another thread.
  virtual void stop() = 0;
};

// What a --source string names, decided without opening it.
enum class SourceKind { ImageFiles, VideoFile, Camera, NetworkStream, GStreamerPipeline };
SourceKind classify_source(const std::string& spec);

// Opens a --source argument: "0" (camera index, V4L2), http(s)/rtsp/rtmp/udp/tcp URLs, GStreamer pipeline strings
// (containing '!'), video files, image files, directories and globs. Throws InputError when it cannot be opened.
std::unique_ptr<FrameSource> open_source(const std::string& spec, const SourceOptions& options);

}  // namespace jitvision::io
