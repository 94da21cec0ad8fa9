#include "outputs.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include "json_text.hpp"
#include "run_folder.hpp"
#include "summary.hpp"

namespace jitvision::app {

std::string class_name(int cls, const std::vector<std::string>& names) {
  return cls >= 0 && cls < static_cast<int>(names.size()) ? names[cls] : std::to_string(cls);
}

nlohmann::json result_json(const Result& r, const std::vector<std::string>& names) {
  auto dets = nlohmann::json::array();
  for (std::size_t i = 0; i < r.detections.size(); ++i) {
    const auto& d = r.detections[i];
    nlohmann::json det{
        {"cls", d.cls}, {"name", class_name(d.cls, names)}, {"conf", d.conf}, {"xyxy", {d.x1, d.y1, d.x2, d.y2}}};
    if (!r.reads.empty()) {
      det["digit"] = r.reads[i].digit;
      det["digit_prob"] = r.reads[i].prob;
    }
    dets.push_back(std::move(det));
  }
  nlohmann::json line{{"source", escape_invalid_utf8(r.frame.source)},
                      {"source_index", r.frame.source_id},
                      {"frame", r.frame.index},
                      {"timestamp", r.frame.timestamp},
                      {"shape", {r.frame.image.rows, r.frame.image.cols}},
                      {"detections", std::move(dets)}};
  if (r.frame.position_ms >= 0) line["position_ms"] = r.frame.position_ms;
  return line;
}

nlohmann::json fault_json(const Result& r) {
  return {{"source", escape_invalid_utf8(r.frame.source)},
          {"source_index", r.frame.source_id},
          {"frame", r.frame.index},
          {"error", escape_invalid_utf8(r.fault)}};
}

std::vector<std::string> source_names(const std::vector<std::string>& sources) {
  io::UniqueNames unique;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    names.push_back(unique.name_for(std::to_string(i), io::source_stem(sources[i])));
  }
  return names;
}

namespace {

// Where a result's source goes among `count` per-source outputs (one output: all of them).
std::size_t slot_of(const Result& r, std::size_t count) {
  return std::min<std::size_t>(static_cast<std::size_t>(std::max(0, r.frame.source_id)), count - 1);
}

// Mosaic cells: 640x360 for up to 4 sources, smaller for more, so the window stays about 1920 px wide at most.
cv::Size mosaic_tile(std::size_t sources) {
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(std::max<std::size_t>(1, sources)))));
  const int width = std::clamp(1920 / cols, 240, 640);
  return {width, width * 9 / 16};
}

}  // namespace

Outputs::Outputs(const DetectOptions& o, std::vector<std::string> names)
    : names_(std::move(names)),
      hide_labels_(o.hide_labels),
      hide_conf_(o.hide_conf),
      line_thickness_(o.line_thickness),
      source_names_(source_names(o.sources)) {
  if (!o.quiet) console_ = std::make_unique<ConsoleLog>(std::cerr, o.sources, names_, ::isatty(STDERR_FILENO) == 1);
  if (o.save_txt || o.save_crop || o.save_csv || o.run_folder_asked) {
    run_dir_ = new_run_dir(o.project, o.name, o.exist_ok);
    if (o.save_txt || o.save_crop || o.save_csv) {
      run_files_ = std::make_unique<RunFiles>(run_dir_,
                                              RunFileOptions{o.save_txt, o.save_conf, o.save_crop, o.save_csv}, names_);
    }
  }
  if (!o.json.empty()) json_ = std::make_unique<io::JsonLinesSink>(o.json);
  if (!o.save_dir.empty()) {
    open_image_dirs(o.save_dir, o.overwrite);
  } else if (!run_dir_.empty() && !o.nosave) {  // the official default: annotated images in the run folder
    open_image_dirs(run_dir_, o.overwrite);
  }
  // The files are checked (extension, directory) now; each writer opens on its first frame, which fixes its size.
  if (!o.save_video.empty()) videos_ = std::make_unique<SourceVideos>(o.save_video, o.sources, o.overwrite);
  if (o.show) open_windows(o.show_mosaic);
}

void Outputs::open_image_dirs(const std::string& dir, bool overwrite) {
  if (source_names_.size() <= 1) {
    image_dirs_.push_back(std::make_unique<io::ImageDirSink>(dir, overwrite));
    return;
  }
  for (const auto& name : source_names_) {
    image_dirs_.push_back(std::make_unique<io::ImageDirSink>((std::filesystem::path(dir) / name).string(), overwrite));
  }
}

void Outputs::open_windows(bool mosaic) {
  mosaic_ = mosaic && source_names_.size() > 1;
  if (mosaic_ || source_names_.size() <= 1) {
    windows_.push_back(std::make_unique<io::Window>("jitvision detect"));
    tiles_.resize(mosaic_ ? source_names_.size() : 0);
    return;
  }
  for (const auto& name : source_names_) windows_.push_back(std::make_unique<io::Window>(name));
}

bool Outputs::show(const cv::Mat& canvas, std::size_t slot) {
  if (!mosaic_) return windows_[std::min(slot, windows_.size() - 1)]->show(canvas);
  tiles_[std::min(slot, tiles_.size() - 1)] = canvas;
  return windows_.front()->show(io::tile_mosaic(tiles_, source_names_, mosaic_tile(tiles_.size())));
}

bool Outputs::write(Result& r) {
  if (!r.fault.empty()) {
    if (json_) json_->write_line(fault_json(r).dump());
    return true;
  }
  if (console_) console_->frame(r);
  if (run_files_) run_files_->write(r);  // before drawing: crops are cut from the frame as captured
  if (json_) json_->write_line(result_json(r, names_).dump());
  bool keep_going = true;
  if (!image_dirs_.empty() || videos_ || !windows_.empty()) {
    draw(r);
    const cv::Mat& canvas = r.frame.image;
    if (!image_dirs_.empty()) {
      image_dirs_[slot_of(r, image_dirs_.size())]->write(
          canvas, r.frame.source, r.frame.index, io::classify_source(r.frame.source) == io::SourceKind::ImageFiles);
    }
    if (videos_) videos_->write(canvas, r);
    if (!windows_.empty()) keep_going = show(canvas, slot_of(r, source_names_.size()));
  }
  ++frames_;
  return keep_going;
}

void Outputs::draw(Result& r) {
  const double frame_ms = last_frame_.elapsed_ms();
  last_frame_.restart();
  std::vector<std::string> labels;
  if (r.reads.empty() && (hide_labels_ || hide_conf_)) {
    for (const auto& d : r.detections) labels.push_back(hide_labels_ ? "" : class_name(d.cls, names_));
  }
  for (std::size_t i = 0; i < r.reads.size(); ++i) {
    const auto& d = r.detections[i];
    const auto& read = r.reads[i];
    labels.push_back((read.digit >= 0 ? std::to_string(read.digit) + " read " + fixed(read.prob, 2) : "? ") + " det " +
                     class_name(d.cls, names_) + " " + fixed(d.conf, 2));
  }
  const std::string status = !windows_.empty() && frames_ > 0 ? fixed(1000.0 / std::max(frame_ms, 1e-3)) + " FPS" : "";
  io::draw_detections(r.frame.image, r.detections, names_, status, labels, line_thickness_);
}

void Outputs::close() {
  if (console_) console_->finish();
  if (videos_) videos_->close();
  if (console_ && !run_dir_.empty()) std::cerr << "jitvision: results saved to " << run_dir_ << std::endl;
}

}  // namespace jitvision::app
