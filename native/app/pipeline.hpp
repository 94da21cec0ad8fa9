#pragma once
// The detect pipeline's stages: capture (one thread per source: decode, letterbox) -> inference workers (a batch of
// frames of different sources: forward, NMS, digit reading) -> output (this thread, which also owns the window),
// joined by the batch scheduler and a bounded queue. Every source runs on its own: one that ends or fails stops only
// itself. One stop flag ends them all: end of every input, SIGINT/SIGTERM, `q` in the window, or a fatal error.
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

#include "batch_scheduler.hpp"
#include "bounded_queue.hpp"
#include "jitvision/core/detector.hpp"
#include "jitvision/core/digits.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/timing.hpp"
#include "jitvision/io/sources.hpp"

namespace jitvision::app {

// A frame on its way from its source's capture thread to an inference worker (the batch scheduler numbers it).
struct CapturedFrame {
  io::Frame frame;
  double source_fps = 0;   // the frame's source's nominal rate; 0: unknown
  PreparedFrame prepared;  // letterboxed in the capture thread, so it overlaps the previous frame's forward
  std::string fault;       // non-empty: the frame could not be used (io::FrameError's message); it is only reported
};

struct Result {
  std::int64_t seq = 0;  // dispatch order over all sources (BatchScheduler): the output puts results back in it
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

// One source's part of a run. The capture thread of the source writes `read`, `dropped`, `capture_ms`, `stats` and
// `end`; the output thread writes `processed`, `first_ms` and `last_ms`; read them after run_pipeline returns.
struct SourceRecord {
  std::int64_t read = 0;       // frames taken from the source (after --vid-stride), faults included
  std::int64_t dropped = 0;    // live: frames replaced in the source's slot by a newer one before a worker took them
  std::int64_t processed = 0;  // results written (faults not counted)
  double first_ms = -1, last_ms = 0;  // when its first and last results were written (run_pipeline's clock)
  TimingStats capture_ms;
  io::SourceStats stats;  // the source's own counters, at its end
  std::string end;        // "ended", "lost", "stopped" or "failed to open"
};

// Everything the stages share.
class Pipeline {
 public:
  std::atomic<bool> stop{false};
  ExitStatus status;
  std::atomic<std::int64_t> skipped{0};        // frames skipped for a fault (each reported by one warning line)
  BatchScheduler<CapturedFrame> frames{2, 1};  // files: 2 frames per source with back-pressure; live: a slot of 1
  BoundedQueue<Result> results{4};
  std::vector<SourceRecord> sources;  // one per --source, in order (sized by run_pipeline)

  // The sources being read, so that request_stop() can interrupt every blocked read.
  void attach(io::FrameSource* source);
  void detach(io::FrameSource* source);
  // Ends the run: capture stops reading; what is queued is still processed and written.
  void request_stop();
  // The one place a stage's exception ends: prints it as one error line ("<stage> failed: ..." for errors that
  // are not jitvision's own) and records its exit code. When `fatal`, it also stops the run: capture stops and
  // `frames` is closed, so the workers drain what is queued and the output writes their results (when the output
  // itself failed, run_pipeline closes `results` too). Never throws.
  void fail(std::exception_ptr error, std::string_view stage, bool fatal) noexcept;

 private:
  std::mutex mutex_;
  std::vector<io::FrameSource*> attached_;
};

// What the capture stage needs: the --source list, how to open them, and the per-frame preparation (letterbox).
struct CaptureJob {
  std::vector<std::string> sources;
  io::SourceOptions source_options;
  long long max_frames = 0;  // per source; 0: all
  long long vid_stride = 1;  // keep only frames whose index is a multiple of this (images have index 0)
  std::function<PreparedFrame(const cv::Mat&)> prepare;
};

// One inference worker's job: the detector (shared; Detector::infer_batch is thread-safe), an optional digit reader,
// its intra-op thread count (0: leave LibTorch's) and the largest batch it forms (--batch; 1: one frame at a time).
struct InferenceJob {
  Detector* detector = nullptr;
  const DigitClassifier* reader = nullptr;
  int intra_op_threads = 0;
  int batch = 1;
};

// Runs the stages: one capture thread per source and `workers` inference workers; `consume` on the calling thread
// gets every result in dispatch order (each source's frames in their own order) and returns false to stop the run.
// A source that cannot be opened or is lost ends alone (its error line and exit code are recorded); the others go
// on to their end. A frame that cannot be used (an image that
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
