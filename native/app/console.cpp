#include "console.hpp"

#include <ostream>

#include <opencv2/videoio.hpp>

#include "jitvision/io/inputs.hpp"
#include "jitvision/io/sources.hpp"
#include "outputs.hpp"
#include "summary.hpp"

namespace jitvision::app {
namespace {

constexpr const char* kClearLine = "\r\033[K";

int item_count(const std::string& spec) {
  if (io::classify_source(spec) != io::SourceKind::ImageFiles) return 1;
  int n = 0;
  for (const auto& item : io::expand_image_inputs({spec}, true)) n += item.error.empty() ? 1 : 0;
  return n;
}

std::int64_t video_frame_count(const std::string& path) {
  cv::VideoCapture capture(path);
  const double count = capture.isOpened() ? capture.get(cv::CAP_PROP_FRAME_COUNT) : 0.0;
  return count >= 1 ? static_cast<std::int64_t>(count) : 0;
}

}  // namespace

ConsoleLog::ConsoleLog(std::ostream& out, const std::vector<std::string>& sources, std::vector<std::string> names,
                       bool progress)
    : out_(out), names_(std::move(names)), progress_(progress) {
  for (const auto& spec : sources) total_items_ += item_count(spec);
}

ConsoleLog::Item& ConsoleLog::item_of(const std::string& source) {
  auto found = items_.find(source);
  if (found != items_.end()) return found->second;
  Item item;
  item.number = static_cast<int>(items_.size()) + 1;
  const auto kind = io::classify_source(source);
  item.video_file = kind == io::SourceKind::VideoFile;
  item.live = kind != io::SourceKind::VideoFile && kind != io::SourceKind::ImageFiles;
  if (item.video_file) item.frame_count = video_frame_count(source);
  return items_.emplace(source, std::move(item)).first->second;
}

std::string ConsoleLog::counts(const Detections& detections) const {
  if (detections.empty()) return "(no detections), ";
  std::map<int, int> per_class;
  for (const auto& d : detections) ++per_class[d.cls];
  std::string text;
  for (const auto& [cls, n] : per_class)
    text += std::to_string(n) + " " + class_name(cls, names_) + (n > 1 ? "s, " : ", ");
  return text;
}

std::string ConsoleLog::progress_line(const Item& item, const Result& r) const {
  const std::int64_t done = r.frame.index + 1;
  const double seconds = item.since_first.elapsed_ms() / 1000.0;
  const double fps = seconds > 0 ? static_cast<double>(done - item.first_frame) / seconds : 0.0;
  std::string line = r.frame.source + ": " + std::to_string(done) + "/" + std::to_string(item.frame_count) +
                     " frames (" + std::to_string(100 * done / item.frame_count) + "%), " + fixed(fps) + " FPS";
  if (fps > 0) line += ", ETA " + fixed(static_cast<double>(item.frame_count - done) / fps) + " s";
  return line;
}

void ConsoleLog::frame(const Result& r) {
  Item& item = item_of(r.frame.source);
  if (item.first_frame < 0) {
    item.first_frame = r.frame.index;
    item.since_first.restart();
  }
  std::string line;
  const std::string of = std::to_string(item.number) + "/" + std::to_string(std::max(total_items_, item.number));
  const std::string frame_no = std::to_string(r.frame.index + 1);
  if (item.video_file) {
    line = "video " + of + " (" + frame_no + "/" + (item.frame_count > 0 ? std::to_string(item.frame_count) : "?") +
           ") " + r.frame.source;
  } else if (item.live) {
    line = "stream " + of + " " + r.frame.source + " (frame " + frame_no + ")";
  } else {
    line = "image " + of + " " + r.frame.source;
  }
  line += ": " + std::to_string(r.input_h) + "x" + std::to_string(r.input_w) + " " + counts(r.detections) +
          fixed(r.times.inference_ms) + "ms";
  const bool progress = progress_ && item.video_file && item.frame_count > 0;
  out_ << (progress_shown_ ? kClearLine : "") << line << "\n";
  if (progress) out_ << progress_line(item, r);
  progress_shown_ = progress;
  out_.flush();
}

void ConsoleLog::finish() {
  if (progress_shown_) out_ << kClearLine << std::flush;
  progress_shown_ = false;
}

}  // namespace jitvision::app
