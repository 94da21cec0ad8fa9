#include "run_files.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "jitvision/io/sources.hpp"
#include "outputs.hpp"

namespace jitvision::app {
namespace {

namespace fs = std::filesystem;

std::string number(double v) {  // "%g", as the official label files
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw OutputError("cannot create " + dir.string() + ": " + (ec ? ec.message() : std::string("not a directory")));
  }
}

// The integer pixel rectangle that holds a box, inside the w x h frame.
cv::Rect pixel_box(const Detection& d, int w, int h) {
  const int x1 = std::clamp(static_cast<int>(std::floor(d.x1)), 0, w);
  const int y1 = std::clamp(static_cast<int>(std::floor(d.y1)), 0, h);
  const int x2 = std::clamp(static_cast<int>(std::ceil(d.x2)), 0, w);
  const int y2 = std::clamp(static_cast<int>(std::ceil(d.y2)), 0, h);
  return {x1, y1, std::max(0, x2 - x1), std::max(0, y2 - y1)};
}

}  // namespace

RunFiles::RunFiles(std::string run_dir, RunFileOptions options, std::vector<std::string> names)
    : dir_(std::move(run_dir)), options_(options), names_(std::move(names)) {
  if (options_.labels) make_dir(fs::path(dir_) / "labels");
  if (options_.crops) make_dir(fs::path(dir_) / "crops");
  if (options_.csv) {
    const std::string path = (fs::path(dir_) / "predictions.csv").string();
    csv_ = std::fopen(path.c_str(), "w");
    if (!csv_) throw OutputError("cannot write " + path + ": " + std::strerror(errno));
    std::fputs("source,frame,class,name,confidence,x1,y1,x2,y2\n", csv_);
  }
}

RunFiles::~RunFiles() {
  if (csv_) std::fclose(csv_);
}

std::string RunFiles::base_name(const Result& r) {
  const std::string stem = fs::path(r.frame.source).stem().string();
  const std::string unique = stems_.name_for(r.frame.source, stem.empty() ? "source" : stem);
  if (io::classify_source(r.frame.source) == io::SourceKind::ImageFiles) return unique;
  char frame[32];
  std::snprintf(frame, sizeof frame, "_%06lld", static_cast<long long>(r.frame.index));
  return unique + frame;
}

void RunFiles::write(const Result& r) {
  const std::string base = base_name(r);
  if (options_.labels && !r.detections.empty()) write_labels(r, base);
  if (options_.crops) write_crops(r, base);
  if (csv_) write_csv(r);
}

void RunFiles::write_labels(const Result& r, const std::string& base) {
  const double w = r.frame.image.cols, h = r.frame.image.rows;
  const fs::path path = fs::path(dir_) / "labels" / (base + ".txt");
  std::ofstream out(path, std::ios::trunc);
  for (const auto& d : r.detections) {
    out << d.cls << ' ' << number((d.x1 + d.x2) / 2 / w) << ' ' << number((d.y1 + d.y2) / 2 / h) << ' '
        << number((d.x2 - d.x1) / w) << ' ' << number((d.y2 - d.y1) / h);
    if (options_.label_conf) out << ' ' << number(d.conf);
    out << '\n';
  }
  out.flush();
  if (!out) throw OutputError("cannot write " + path.string());
}

void RunFiles::write_crops(const Result& r, const std::string& base) {
  for (std::size_t i = 0; i < r.detections.size(); ++i) {
    const auto& d = r.detections[i];
    const cv::Rect box = pixel_box(d, r.frame.image.cols, r.frame.image.rows);
    if (box.area() == 0) continue;
    std::string folder_name = class_name(d.cls, names_);
    std::replace(folder_name.begin(), folder_name.end(), '/', '_');  // a class name is one folder, never a path
    const fs::path folder = fs::path(dir_) / "crops" / folder_name;
    make_dir(folder);
    const fs::path path = folder / (base + "_" + std::to_string(i) + ".jpg");
    if (!cv::imwrite(path.string(), r.frame.image(box))) throw OutputError("cannot write " + path.string());
  }
}

void RunFiles::write_csv(const Result& r) {
  for (const auto& d : r.detections) {
    std::fprintf(csv_, "%s,%lld,%d,%s,%s,%s,%s,%s,%s\n", csv_field(r.frame.source).c_str(),
                 static_cast<long long>(r.frame.index), d.cls, csv_field(class_name(d.cls, names_)).c_str(),
                 number(d.conf).c_str(), number(d.x1).c_str(), number(d.y1).c_str(), number(d.x2).c_str(),
                 number(d.y2).c_str());
  }
  if (std::fflush(csv_) != 0) throw OutputError(std::string("cannot write predictions.csv: ") + std::strerror(errno));
}

}  // namespace jitvision::app
