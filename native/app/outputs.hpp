#pragma once
// Where detect results go: the per-frame console lines, JSON lines, annotated images, annotated videos, windows,
// and the run folder's label, crop and CSV files. All are opened before any input is read, so a bad output path
// fails fast (OutputError). With several sources, images go to one sub-folder per source, --save-video may give one
// video per source (source_videos.hpp), and --show opens one window per source or one mosaic; each is named by the
// source's unique name (source_names()).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "console.hpp"
#include "jitvision/io/sinks.hpp"
#include "pipeline.hpp"
#include "run_files.hpp"
#include "source_videos.hpp"

namespace jitvision::app {

// One frame's JSON line: {"source", "source_index", "frame", "timestamp"[, "position_ms"], "shape", "detections":
// [{"cls", "name", "conf", "xyxy"[, "digit", "digit_prob"]}]}: "source_index" is the source's position in the source
// list, "frame" the frame's number within its source, "timestamp" its capture time (seconds since the Unix epoch),
// "position_ms" (video files only) its position in the stream. A source name that is not valid UTF-8 is written with
// its invalid bytes as \xNN (escape_invalid_utf8).
nlohmann::json result_json(const Result& r, const std::vector<std::string>& names);

// A skipped frame's JSON line (Result::fault): {"source", "source_index", "frame", "error"}.
nlohmann::json fault_json(const Result& r);

// The class's name, or its index as text when the model names fewer classes.
std::string class_name(int cls, const std::vector<std::string>& names);

// Each source's name for the outputs named after it: its io::source_stem, numbered when two sources share one.
std::vector<std::string> source_names(const std::vector<std::string>& sources);

class Outputs {
 public:
  // Opens what `o` asks for, creating the run folder when one is asked for (run_folder.hpp); throws OutputError
  // (bad path, no display for the window).
  Outputs(const DetectOptions& o, std::vector<std::string> names);
  Outputs(const Outputs&) = delete;
  Outputs& operator=(const Outputs&) = delete;
  // Writes one result (the frame is drawn on in place); a skipped frame only gets its JSON record. False when the
  // user closed the window or pressed q/Esc. Throws OutputError when an output cannot be written.
  bool write(Result& r);
  // Finalises the video file (also done by the destructor) and says where the run folder is.
  void close();

 private:
  void draw(Result& r);
  void open_image_dirs(const std::string& dir, bool overwrite);
  void open_windows(bool mosaic);
  bool show(const cv::Mat& canvas, std::size_t slot);

  std::vector<std::string> names_;
  bool hide_labels_ = false, hide_conf_ = false;
  int line_thickness_ = 0;
  std::string run_dir_;  // empty: no run folder
  std::unique_ptr<ConsoleLog> console_;
  std::unique_ptr<RunFiles> run_files_;
  std::unique_ptr<io::JsonLinesSink> json_;
  std::vector<std::string> source_names_;
  std::vector<std::unique_ptr<io::ImageDirSink>> image_dirs_;  // one, or one per source (sub-folders)
  std::unique_ptr<SourceVideos> videos_;
  std::vector<std::unique_ptr<io::Window>> windows_;  // one, or one per source
  bool mosaic_ = false;
  std::vector<cv::Mat> tiles_;  // the mosaic's: each source's latest annotated frame
  std::int64_t frames_ = 0;
  Stopwatch last_frame_;  // for the window's FPS line
};

}  // namespace jitvision::app
