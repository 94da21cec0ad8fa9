#include "summary.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace jitvision::app {
namespace {

std::string stage(const char* name, const TimingStats& s) {
  return std::string(name) + " " + fixed(s.median()) + "/" + fixed(s.percentile(90));
}

// "jitvision: source 1 cam.mp4: 120 read, 118 processed, 2 dropped, 0 reconnects, 14.8 FPS, ended"
void print_sources(const std::vector<SourceSummary>& sources) {
  const bool eventful = std::any_of(sources.begin(), sources.end(),
                                    [](const SourceSummary& s) { return s.dropped > 0 || s.reconnects > 0; });
  if (sources.size() < 2 && !eventful) return;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const auto& s = sources[i];
    std::cerr << "jitvision: source " << i << " " << s.name << ": " << s.read << " read, " << s.processed
              << " processed, " << s.dropped << " dropped, " << s.reconnects
              << (s.reconnects == 1 ? " reconnect, " : " reconnects, ") << fixed(s.fps) << " FPS, " << s.end << "\n";
  }
}

}  // namespace

std::string fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

void Progress::begin_frame(double since_start_ms) {
  if (first_result_ms_ < 0) {
    first_result_ms_ = since_start_ms;
    steady_.restart();
  }
}

void Progress::end_frame() {
  ++frames_;
  steady_ms_ = steady_.elapsed_ms();
}

double Progress::steady_fps() const {
  return frames_ > 1 ? static_cast<double>(frames_ - 1) / std::max(steady_ms_ / 1000.0, 1e-9) : 0.0;
}

DetectSummary summarise(const StageTimings& t, const Progress& progress, double wall_ms, int exit_code,
                        const RunSetup& setup) {
  DetectSummary s;
  s.frames = progress.frames();
  s.wall_ms = wall_ms;
  s.first_result_ms = progress.first_result_ms();
  s.steady_fps = progress.steady_fps();
  s.stages = {{"capture", t.capture.samples()},     {"preprocess", t.preprocess.samples()},
              {"inference", t.inference.samples()}, {"postprocess", t.postprocess.samples()},
              {"read", t.read.samples()},           {"output", t.output.samples()}};
  s.exit_code = exit_code;
  s.workers = setup.workers;
  s.threads_per_worker = setup.threads_per_worker;
  s.batch = setup.batch;
  return s;
}

std::string precision_label(torch::ScalarType dtype) {
  if (dtype == torch::kHalf) return "FP16";
  if (dtype == torch::kBFloat16) return "BF16";
  return "";
}

void print_summary(const DetectSummary& s, const StageTimings& t, const RunSetup& setup, int stop_signal) {
  std::cerr << "jitvision: " << s.frames << " frames from " << setup.sources << " source(s) on "
            << (setup.cuda ? "CUDA" : "CPU") << (setup.precision.empty() ? "" : " " + setup.precision) << ", input "
            << setup.img_size << (setup.rect ? " (rect)" : " (square)") << ", " << s.workers
            << (s.workers == 1 ? " worker" : " workers") << " x " << s.threads_per_worker
            << (s.threads_per_worker == 1 ? " thread" : " threads");
  if (s.batch > 1) std::cerr << ", batch " << s.batch;
  if (s.skipped > 0) std::cerr << ", " << s.skipped << " skipped";
  if (s.frames > 1) std::cerr << ", " << fixed(s.steady_fps) << " FPS";
  if (s.first_result_ms >= 0) std::cerr << ", first result after " << fixed(s.first_result_ms / 1000.0, 2) << " s";
  std::cerr << "\njitvision: per-frame ms (median/p90): " << stage("capture", t.capture) << ", "
            << stage("preprocess", t.preprocess) << ", " << stage("inference", t.inference) << ", "
            << stage("postprocess", t.postprocess) << ", " << (setup.reader ? stage("read digits", t.read) + ", " : "")
            << stage("output", t.output) << std::endl;
  print_sources(s.per_source);
  if (stop_signal) std::cerr << "jitvision: stopped by signal " << stop_signal << std::endl;
}

}  // namespace jitvision::app
