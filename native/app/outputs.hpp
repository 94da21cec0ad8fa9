#pragma once
// Where detect results go: the per-frame console lines, JSON lines, annotated images, one annotated video, a window,
// and the run folder's label, crop and CSV files. All are opened before any input is read, so a bad output path
// fails fast (OutputError).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "console.hpp"
#include "jitvision/io/sinks.hpp"
#include "pipeline.hpp"
#include "run_files.hpp"

namespace jitvision::app {

// One frame's JSON line: {"source", "frame", "shape", "detections": [{"cls", "name", "conf", "xyxy"[, "digit",
// "digit_prob"]}]}. A source name that is not valid UTF-8 is written with its invalid bytes as \xNN
// (escape_invalid_utf8).
nlohmann::json result_json(const Result& r, const std::vector<std::string>& names);

// A skipped frame's JSON line (Result::fault): {"source", "frame", "error"}.
nlohmann::json fault_json(const Result& r);

// The class's name, or its index as text when the model names fewer classes.
std::string class_name(int cls, const std::vector<std::string>& names);

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

  std::vector<std::string> names_;
  bool hide_labels_ = false, hide_conf_ = false;
  int line_thickness_ = 0;
  std::string run_dir_;  // empty: no run folder
  std::unique_ptr<ConsoleLog> console_;
  std::unique_ptr<RunFiles> run_files_;
  std::unique_ptr<io::JsonLinesSink> json_;
  std::unique_ptr<io::ImageDirSink> image_dir_;
  std::unique_ptr<io::VideoFileSink> video_;  // its frame rate is the first frame's source's (30 when unknown)
  std::unique_ptr<io::Window> window_;
  std::int64_t frames_ = 0;
  Stopwatch last_frame_;  // for the window's FPS line
};

}  // namespace jitvision::app
