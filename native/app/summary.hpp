#pragma once
// What a detect run measured, and the two summary lines it prints on stderr.
#include <cstdint>
#include <string>

#include <c10/core/ScalarType.h>

#include "commands.hpp"
#include "jitvision/core/timing.hpp"

namespace jitvision::app {

// `v` with `precision` digits after the point.
std::string fixed(double v, int precision = 1);

// Per-frame times of each stage (ms). `capture` is filled by the capture thread, the rest by the output thread.
struct StageTimings {
  TimingStats capture, preprocess, inference, postprocess, read, output;
};

// The output thread's clock: frames written, when the first result came and the steady-state rate after it.
class Progress {
 public:
  // Around writing each result: `since_start_ms` is the command's clock.
  void begin_frame(double since_start_ms);
  void end_frame();
  std::int64_t frames() const { return frames_; }
  double first_result_ms() const { return first_result_ms_; }
  double steady_fps() const;

 private:
  std::int64_t frames_ = 0;
  double first_result_ms_ = -1;
  Stopwatch steady_;  // restarted at the first result: the FPS figure is steady state
  double steady_ms_ = 0;
};

// What the run was set up with, for the first summary line.
struct RunSetup {
  std::size_t sources = 0;
  bool cuda = false;
  std::string precision;  // "FP16", "BF16" or "" (FP32), shown after the device
  std::int64_t img_size = 0;
  bool rect = false;  // the model letterboxes to a rectangle (dynamic input)
  bool reader = false;
  int workers = 1;
  int threads_per_worker = 0;
  int batch = 1;  // the largest batch of frames of different sources in one forward
};

// The RunSetup::precision of a model input's dtype.
std::string precision_label(torch::ScalarType dtype);

DetectSummary summarise(const StageTimings& t, const Progress& progress, double wall_ms, int exit_code,
                        const RunSetup& setup);

// "jitvision: N frames from ..." and "jitvision: per-frame ms (median/p90): ...", with several sources (or one that
// dropped frames or reconnected) one "jitvision: source I NAME: ..." line per source, and the stop signal if any.
void print_summary(const DetectSummary& s, const StageTimings& t, const RunSetup& setup, int stop_signal);

}  // namespace jitvision::app
