#pragma once
// --save-video: one annotated video for the run, or one per source. Each video is written at its source's frame rate:
// the nominal one for files and finite pipelines, the measured rate of the frames that reach it for live sources
// (the first frames are held back, up to kMeasureSeconds or kMeasureFrames, to measure it).
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "jitvision/io/sinks.hpp"
#include "pipeline.hpp"

namespace jitvision::app {

class SourceVideo {
 public:
  static constexpr double kMeasureSeconds = 2.0;
  static constexpr std::size_t kMeasureFrames = 30;  // bounds the memory held: 30 frames of 720p are 83 MB
  // `live`: measure the rate from the frames' capture times instead of taking the source's nominal rate.
  SourceVideo(const std::string& path, bool live);
  void write(const cv::Mat& canvas, const Result& r);  // throws OutputError
  void close();                                        // throws OutputError

 private:
  void flush(double nominal_fps);

  io::VideoFileSink sink_;
  bool measuring_;
  std::vector<cv::Mat> held_;
  double first_time_ = 0, last_time_ = 0;
  double nominal_fps_ = 0;
};

// The videos --save-video asks for. `target` is a file (a video extension such as .mp4, .avi, .mkv: every frame of the
// run into it, as with one source), a directory (an existing one, or a path without an extension, created: one
// <name>.mp4 per source), or a pattern containing {name} (out/{name}.avi: one file per source). Names are
// io::source_stem()s made unique by io::UniqueNames; a name whose file exists (an earlier run's, unless `overwrite`, or
// one of the sources, always) is numbered instead. Throws UsageError for a plain file with several sources, OutputError
// for a path it cannot use.
class SourceVideos {
 public:
  SourceVideos(const std::string& target, const std::vector<std::string>& sources, bool overwrite);
  void write(const cv::Mat& canvas, const Result& r);  // throws OutputError
  void close();                                        // finalises every video; throws OutputError
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  std::vector<std::string> paths_;                    // one, or one per source
  std::vector<std::unique_ptr<SourceVideo>> videos_;  // same order
};

}  // namespace jitvision::app
