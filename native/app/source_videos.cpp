#include "source_videos.hpp"

#include <algorithm>
#include <filesystem>

#include "jitvision/core/errors.hpp"
#include "jitvision/io/inputs.hpp"
#include "jitvision/io/sources.hpp"

namespace jitvision::app {
namespace {

namespace fs = std::filesystem;

constexpr const char* kNameField = "{name}";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

// The per-source path pattern for `target`, or "" when it names one file (it has a video extension, or it is neither
// a directory nor a path without an extension).
std::string per_source_pattern(const std::string& target) {
  if (target.find(kNameField) != std::string::npos) return target;
  if (io::has_video_extension(target)) return "";
  std::error_code ec;
  const bool directory = fs::is_directory(target, ec) || target.back() == '/' || fs::path(target).extension().empty();
  if (!directory) return "";
  fs::create_directories(target, ec);
  if (!fs::is_directory(target, ec)) {
    throw OutputError("cannot write videos into " + target + (ec ? ": " + ec.message() : ": it is not a directory"));
  }
  return (fs::path(target) / (std::string(kNameField) + ".mp4")).string();
}

}  // namespace

SourceVideo::SourceVideo(const std::string& path, bool live) : sink_(path, 0.0), measuring_(live) {}

void SourceVideo::write(const cv::Mat& canvas, const Result& r) {
  nominal_fps_ = r.source_fps;
  if (!measuring_) {
    sink_.set_fps(r.source_fps);  // the first frame's source fixes the rate
    sink_.write(canvas);
    return;
  }
  if (held_.empty()) first_time_ = r.frame.timestamp;
  last_time_ = r.frame.timestamp;
  held_.push_back(canvas);  // each result owns its frame buffer: nothing draws on it after this
  if (held_.size() >= kMeasureFrames || last_time_ - first_time_ >= kMeasureSeconds) flush(r.source_fps);
}

// Writes the held frames at the rate they arrived at (the nominal rate when they are too few to tell).
void SourceVideo::flush(double nominal_fps) {
  if (!measuring_) return;
  measuring_ = false;
  const double span = last_time_ - first_time_;
  const double measured = held_.size() >= 2 && span > 0 ? static_cast<double>(held_.size() - 1) / span : 0;
  sink_.set_fps(measured > 0 ? measured : nominal_fps);
  for (const auto& frame : held_) sink_.write(frame);
  held_.clear();
}

void SourceVideo::close() {
  flush(nominal_fps_);
  sink_.close();
}

SourceVideos::SourceVideos(const std::string& target, const std::vector<std::string>& sources, bool overwrite) {
  const std::string pattern = per_source_pattern(target);
  if (pattern.empty()) {
    if (sources.size() > 1) {
      throw UsageError("--save-video " + target + " is one file for " + std::to_string(sources.size()) +
                       " sources; give a directory or a pattern with {name} (e.g. out/{name}.mp4) for one video per "
                       "source");
    }
    paths_.push_back(target);
    videos_.push_back(std::make_unique<SourceVideo>(target, !sources.empty() && io::is_live_source(sources[0])));
    return;
  }
  // A file that exists is never replaced when it is a source, and otherwise only with --overwrite.
  io::UniqueNames names([&](const std::string& name) {
    const std::string path = replace_all(pattern, kNameField, name);
    std::error_code ec;
    if (!fs::exists(path, ec)) return false;
    return !overwrite || std::any_of(sources.begin(), sources.end(), [&](const auto& s) { return same_file(s, path); });
  });
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const std::string name = names.name_for(std::to_string(i), io::source_stem(sources[i]));
    paths_.push_back(replace_all(pattern, kNameField, name));
    videos_.push_back(std::make_unique<SourceVideo>(paths_.back(), io::is_live_source(sources[i])));
  }
}

void SourceVideos::write(const cv::Mat& canvas, const Result& r) {
  const std::size_t slot =
      std::min<std::size_t>(static_cast<std::size_t>(std::max(0, r.frame.source_id)), videos_.size() - 1);
  videos_[slot]->write(canvas, r);
}

void SourceVideos::close() {
  std::exception_ptr first;
  for (auto& video : videos_) {
    try {
      video->close();
    } catch (const Error&) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace jitvision::app
