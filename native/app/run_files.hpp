#pragma once
// The files the official detector's --save-txt, --save-crop and --save-csv write into a run folder
// (docs/detect.md, "Run folder"):
//   RUN/labels/<stem>.txt (images) or <stem>_<frame, 6 digits>.txt (video and live frames): one line per detection,
//     "cls cx cy w h" normalised by the frame's width and height (YOLO label format), plus " conf" with --save-conf;
//     no file for a frame without detections;
//   RUN/crops/<class name>/<stem>[_<frame>]_<detection index>.jpg: each box cut from the frame as captured;
//   RUN/predictions.csv: one row per detection, "source,frame,class,name,confidence,x1,y1,x2,y2".
// Names follow the annotated images' (ImageDirSink): two sources with one stem get <stem>, <stem>_2, ...
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "jitvision/io/sinks.hpp"
#include "pipeline.hpp"

namespace jitvision::app {

struct RunFileOptions {
  bool labels = false;
  bool label_conf = false;
  bool crops = false;
  bool csv = false;
};

class RunFiles {
 public:
  // Creates the sub-folders and the CSV file it needs under `run_dir`; throws OutputError.
  RunFiles(std::string run_dir, RunFileOptions options, std::vector<std::string> names);
  ~RunFiles();
  RunFiles(const RunFiles&) = delete;
  RunFiles& operator=(const RunFiles&) = delete;
  // Writes one frame's files; call before the frame is drawn on. Throws OutputError.
  void write(const Result& r);

 private:
  std::string base_name(const Result& r);  // <stem> or <stem>_<frame>
  void write_labels(const Result& r, const std::string& base);
  void write_crops(const Result& r, const std::string& base);
  void write_csv(const Result& r);

  std::string dir_;
  RunFileOptions options_;
  std::vector<std::string> names_;
  std::FILE* csv_ = nullptr;
  io::UniqueNames stems_;  // source -> its unique stem
};

}  // namespace jitvision::app
