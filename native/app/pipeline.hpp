#pragma once
// The detect pipeline's stages: capture (decode, letterbox) -> inference workers (forward, NMS, digit reading) ->
// output (this thread, which also owns the window), joined by bounded queues. One stop flag ends them all: end of
// input, SIGINT/SIGTERM, `q` in the window, --max-frames, or a fatal error.
//
// Errors: every stage ends in Pipeline::fail, the one place that reports an exception (one line), records its exit
// code and, when it is fatal, stops every stage; the stages then drain and the outputs are finalised.
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bounded_queue.hpp"
#include "jitvision/core/detector.hpp"
#include "jitvision/core/digits.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/timing.hpp"
#include "jitvision/io/sources.hpp"

namespace jitvision::app {

struct CapturedFrame {
  std::int64_t seq = 0;  // capture order over all sources: the output puts results back in this order
  io::Frame frame;
  double source_fps = 0;   // the frame's source's nominal rate; 0: unknown
  PreparedFrame prepared;  // letterboxed in the capture thread, so it overlaps the previous frame's forward
  std::string fault;       // non-empty: the frame could not be used (io::FrameError's message); it is only reported
};

struct Result {
  std::int64_t seq = 0;
  io::Frame frame;
  double source_fps = 0;
  Detections detections;
  std::int64_t input_h = 0, input_w = 0;  // the model input the frame was letterboxed to
  StageTimes times;
  std::vector<DigitResult> reads;  // one per detection when a digit reader is set
  double read_ms = 0;
  std::string fault;  // non-empty: a skipped frame (CapturedFrame::fault); `frame` has its source and index only
};

// The exit code of a run that may fail in several places at once. Precedence (README "Exit codes"):
//   1. an internal error (exit 1: a bug or an unexpected library failure) outranks everything;
//   2. otherwise the first fatal or source-ending failure stands (2, 3, 4, 6, 7), whatever its number;
//   3. an unreadable input (5: the other inputs were still processed) only when nothing else failed.
// Thread-safe.
class ExitStatus {
 public:
  void record(ExitCode code);
  ExitCode code() const { return static_cast<ExitCode>(code_.load()); }

 private:
  std::atomic<int> code_{0};
};

// Everything the stages share.
class Pipeline {
 public:
  std::atomic<bool> stop{false};
  ExitStatus status;
  std::atomic<std::int64_t> skipped{0};  // frames skipped for a fault (each reported by one warning line)
  BoundedQueue<CapturedFrame> frames{2};
  BoundedQueue<Result> results{4};

  // The source the capture stage reads now, so that request_stop() can interrupt a blocked read.
  void set_source(io::FrameSource* source);
  // Ends the run: capture stops reading; what is queued is still processed and written.
  void request_stop();
  // The one place a stage's exception ends: prints it as one error line ("<stage> failed: ..." for errors that
  // are not jitvision's own) and records its exit code. When `fatal`, it also stops the run: capture stops and
  // `frames` is closed, so the workers drain what is queued and the output writes their results (when the output
  // itself failed, run_pipeline closes `results` too). Never throws.
  void fail(std::exception_ptr error, std::string_view stage, bool fatal) noexcept;

 private:
  std::mutex mutex_;
  io::FrameSource* source_ = nullptr;
};

// What the capture stage needs: the --source list, how to open them, and the per-frame preparation (letterbox).
struct CaptureJob {
  std::vector<std::string> sources;
  io::SourceOptions source_options;
  long long max_frames = 0;  // per source; 0: all
  long long vid_stride = 1;  // keep only frames whose index is a multiple of this (images have index 0)
  std::function<PreparedFrame(const cv::Mat&)> prepare;
};

// One inference worker's job: the detector (shared; Detector::infer is thread-safe), an optional digit reader,
// and its intra-op thread count (0: leave LibTorch's).
struct InferenceJob {
  Detector* detector = nullptr;
  const DigitClassifier* reader = nullptr;
  int intra_op_threads = 0;
};

// Runs the stages: capture and `workers` inference workers on their own threads; `consume` on the calling thread
// gets every result in capture order and returns false to stop the run. A frame that cannot be used (an image that
// cannot be decoded, a frame that cannot be letterboxed: io::FrameError) is skipped, not its source: it reaches
// `consume` in its place with `fault` set (for the JSON record), after one warning line; it counts in `skipped` and
// makes the exit code 5. Returns after every stage has finished;
// an exception from `consume` is handled by Pipeline::fail like any other stage's. The first received SIGINT or
// SIGTERM stops the run cleanly (see received_stop_signal()); a second one exits at once with 128 + the signal.
void run_pipeline(Pipeline& p, const CaptureJob& capture, const InferenceJob& inference, int workers,
                  TimingStats& capture_ms, const std::function<bool(Result&)>& consume);

// The SIGINT/SIGTERM that stopped the last run_pipeline, or 0.
int received_stop_signal();

}  // namespace jitvision::app
