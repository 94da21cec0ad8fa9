#include "outputs.hpp"

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
  return {{"source", escape_invalid_utf8(r.frame.source)},
          {"frame", r.frame.index},
          {"shape", {r.frame.image.rows, r.frame.image.cols}},
          {"detections", std::move(dets)}};
}

nlohmann::json fault_json(const Result& r) {
  return {{"source", escape_invalid_utf8(r.frame.source)},
          {"frame", r.frame.index},
          {"error", escape_invalid_utf8(r.fault)}};
}

Outputs::Outputs(const DetectOptions& o, std::vector<std::string> names)
    : names_(std::move(names)),
      hide_labels_(o.hide_labels),
      hide_conf_(o.hide_conf),
      line_thickness_(o.line_thickness) {
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
    image_dir_ = std::make_unique<io::ImageDirSink>(o.save_dir, o.overwrite);
  } else if (!run_dir_.empty() && !o.nosave) {  // the official default: annotated images in the run folder
    image_dir_ = std::make_unique<io::ImageDirSink>(run_dir_, o.overwrite);
  }
  // The file is checked (extension, directory) now; the writer opens on the first frame, which fixes its size.
  if (!o.save_video.empty()) video_ = std::make_unique<io::VideoFileSink>(o.save_video, 0.0);
  if (o.show) window_ = std::make_unique<io::Window>("jitvision detect");
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
  if (image_dir_ || video_ || window_) {
    draw(r);
    const cv::Mat& canvas = r.frame.image;
    if (image_dir_) {
      image_dir_->write(canvas, r.frame.source, r.frame.index,
                        io::classify_source(r.frame.source) == io::SourceKind::ImageFiles);
    }
    if (video_) {
      video_->set_fps(r.source_fps);  // the first frame's source fixes the rate
      video_->write(canvas);
    }
    if (window_) keep_going = window_->show(canvas);
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
  const std::string status = window_ && frames_ > 0 ? fixed(1000.0 / std::max(frame_ms, 1e-3)) + " FPS" : "";
  io::draw_detections(r.frame.image, r.detections, names_, status, labels, line_thickness_);
}

void Outputs::close() {
  if (console_) console_->finish();
  if (video_) video_->close();
  if (console_ && !run_dir_.empty()) std::cerr << "jitvision: results saved to " << run_dir_ << std::endl;
}

}  // namespace jitvision::app
