#include "pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <latch>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

#include <ATen/Parallel.h>

#include "digit_reader.hpp"
#include "failure.hpp"
#include "in_order.hpp"
#include "jitvision/core/image.hpp"

namespace jitvision::app {
namespace {

volatile std::sig_atomic_t g_signal = 0;
// The first SIGINT/SIGTERM asks for a clean stop; a second one, while that stop is still draining (a slow forward),
// ends the process at once with 128 + the signal (130, 143). JSON lines already written are complete: each is flushed
// as it is written. Only async-signal-safe calls here.
extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    static const char kMessage[] = "jitvision: second stop signal: exiting at once\n";
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(128 + sig);
  }
  g_signal = sig;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int rank(ExitCode code) {
  switch (code) {
    case ExitCode::Ok:
      return 0;
    case ExitCode::Input:
      return 1;
    case ExitCode::Internal:
      return 3;
    default:
      return 2;
  }
}

// Letterboxes a frame. Whatever fails here (a frame too thin to letterbox throws inside OpenCV; a huge one runs out
// of memory) fails for this frame only: it becomes an io::FrameError.
PreparedFrame prepare_frame(const CaptureJob& job, const io::Frame& frame) {
  try {
    return job.prepare(frame.image);
  } catch (...) {
    const Failure f = failure_of(std::current_exception());
    throw io::FrameError(frame.source, frame.index,
                         "frame " + std::to_string(frame.index) + " of " + frame.source + " (" +
                             std::to_string(frame.image.cols) + "x" + std::to_string(frame.image.rows) +
                             ") cannot be letterboxed: " + f.message);
  }
}

// Hands one captured frame (or fault) to the scheduler: files with back-pressure, live sources into their slot of
// one, replacing (and counting) a frame no worker has taken yet. False when the run is closing.
bool hand_over(Pipeline& p, int id, bool live, CapturedFrame item) {
  if (!live) return p.frames.push(id, std::move(item));
  const auto pushed = p.frames.push_latest(id, std::move(item));
  if (pushed == BatchScheduler<CapturedFrame>::Pushed::Replaced) ++p.sources[id].dropped;
  return pushed != BatchScheduler<CapturedFrame>::Pushed::Closed;
}

// Reads frames of an open source until its end (or --max-frames, or a stop); returns how it ended. A frame that
// cannot be used (io::FrameError: undecodable, over --max-pixels, impossible to letterbox) goes on in its place as
// a fault; an argument of an image list that names nothing readable is reported and skipped; any other
// jitvision::Error (a source lost for good) ends this source only. Anything else propagates: it is fatal.
std::string read_source(Pipeline& p, const CaptureJob& job, int id, io::FrameSource& source) {
  SourceRecord& rec = p.sources[id];
  const bool live = source.live();
  // --max-frames counts the frames that reach the model: a live frame replaced in its slot does not count.
  while (job.max_frames <= 0 || rec.read - rec.dropped < job.max_frames) {
    if (p.stop) return "stopped";
    try {
      Stopwatch sw;
      auto frame = source.next();
      if (!frame) return p.stop ? "stopped" : "ended";
      if (frame->index % std::max(1LL, job.vid_stride) != 0) continue;  // --vid-stride
      rec.capture_ms.add(sw.elapsed_ms());
      ++rec.read;
      frame->source_id = id;
      auto prepared = prepare_frame(job, *frame);
      if (!hand_over(p, id, live, CapturedFrame{std::move(*frame), source.fps(), std::move(prepared), {}})) {
        return "stopped";
      }
    } catch (const io::FrameError& e) {  // one bad frame: skipped, reported in its place by the output stage
      ++rec.read;
      CapturedFrame fault;
      fault.frame.source = e.source();
      fault.frame.index = e.index();
      fault.frame.source_id = id;
      fault.fault = e.what();
      if (!p.frames.push(id, std::move(fault))) return "stopped";  // never replaced: each fault is reported
    } catch (const InputError&) {  // one unreadable argument of a list (missing, not a file): report it and go on
      p.fail(std::current_exception(), "capture", false);
    } catch (const Error&) {  // the source is gone for good
      p.fail(std::current_exception(), "capture", false);
      return "lost";
    }
  }
  return "ended";  // --max-frames
}

// One source's capture thread: opens it, reads it, and however that ends, tells the scheduler it is finished.
void capture_source(Pipeline& p, const CaptureJob& job, int id) {
  SourceRecord& rec = p.sources[id];
  struct Finish {  // the workers must not wait for this source any more, whatever happens here
    Pipeline& p;
    int id;
    ~Finish() { p.frames.finish(id); }
  } finish{p, id};
  rec.end = "failed to open";
  std::unique_ptr<io::FrameSource> source;
  try {
    source = io::open_source(job.sources[id], job.source_options);
  } catch (const Error&) {
    p.fail(std::current_exception(), "capture", false);
    return;
  }
  p.attach(source.get());
  struct Detach {  // however this function ends, the pipeline must not keep a pointer to the closed source
    Pipeline& p;
    io::FrameSource* source;
    SourceRecord& rec;
    ~Detach() {
      rec.stats = source->stats();
      p.detach(source);
    }
  } detach{p, source.get(), rec};
  rec.end = "stopped";  // stays so when a fatal exception passes through read_source: it stops the whole run
  rec.end = read_source(p, job, id, *source);
}

// Frames join a batch when they have the input shape of its first one (one tensor); a fault goes alone.
bool joins(const CapturedFrame& first, const CapturedFrame& other) {
  return first.fault.empty() && other.fault.empty() && first.prepared.geometry.out_h == other.prepared.geometry.out_h &&
         first.prepared.geometry.out_w == other.prepared.geometry.out_w;
}

// Runs one batch through the model (and the digit reader) and passes its results on; false when the run is
// closing. A fault (a batch of its own) is passed on in its place, to be reported in order.
bool run_batch(Pipeline& p, const InferenceJob& job, std::vector<BatchScheduler<CapturedFrame>::Item>& batch) {
  std::vector<Result> results(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    results[i].seq = batch[i].seq;
    results[i].source_fps = batch[i].value.source_fps;
    results[i].fault = std::move(batch[i].value.fault);
  }
  if (results.front().fault.empty()) {
    std::vector<const PreparedFrame*> inputs;
    for (const auto& item : batch) inputs.push_back(&item.value.prepared);
    // The model's own code failing is a model error (exit 3), not a bug of ours.
    const auto& first = batch.front().value.frame;
    const auto failed = [&] {
      return "the model failed on frame " + std::to_string(first.index) + " of " + first.source +
             (batch.size() > 1 ? " (in a batch of " + std::to_string(batch.size()) + ")" : std::string());
    };
    std::vector<StageTimes> times;
    auto detections = run_model([&] { return job.detector->infer_batch(inputs, &times); }, failed);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Result& r = results[i];
      const auto& item = batch[i].value;
      r.input_h = item.prepared.geometry.out_h;
      r.input_w = item.prepared.geometry.out_w;
      r.detections = std::move(detections[i]);
      r.times = times[i];
      if (job.reader) {
        Stopwatch sw;
        const auto reader_failed = [&] {
          return "the model failed on frame " + std::to_string(item.frame.index) + " of " + item.frame.source;
        };
        r.reads = run_model([&] { return read_digits(*job.reader, item.frame.image, r.detections); }, reader_failed);
        r.read_ms = sw.elapsed_ms();
      }
    }
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    results[i].frame = std::move(batch[i].value.frame);
    if (!p.results.push(std::move(results[i]))) return false;
  }
  return true;
}

// This thread's intra-op thread count. LibTorch initialises a thread's count lazily, at its first parallel
// operation, from the count last set by any thread: initialising first keeps that from undoing this call later.
void set_thread_intra_op_threads(int threads) {
  at::internal::lazy_init_num_threads();
  at::set_num_threads(threads);
}

// One inference worker; several may run side by side on the CPU, each with its own intra-op thread count (OpenMP's
// is per thread; MKL's is process-wide, so the workers set theirs after the capture threads: see run_pipeline). Each
// takes a batch of up to job.batch ready frames of different sources.
void inference_stage(Pipeline& p, const InferenceJob& job, int threads) {
  set_thread_intra_op_threads(threads);
  const auto max = static_cast<std::size_t>(std::max(1, job.batch));
  while (true) {
    auto batch = p.frames.take(max, joins);
    if (batch.empty() || !run_batch(p, job, batch)) break;
  }
}

// Results in dispatch order. Workers finish frames out of order: a result waits until every earlier frame is out.
// Once the workers are done, a gap (a frame lost to a failure or a stop) is skipped.
std::optional<Result> next_result(Pipeline& p, InOrder<Result>& in_order) {
  while (true) {
    if (auto r = in_order.next()) return r;
    if (g_signal && !p.stop) p.request_stop();
    if (auto r = p.results.pop_for(std::chrono::milliseconds(50))) {
      const auto seq = r->seq;
      in_order.add(seq, std::move(*r));
    } else if (p.results.drained()) {
      return in_order.next_skipping_gap();
    }
  }
}

void output_stage(Pipeline& p, const std::function<bool(Result&)>& consume) {
  InOrder<Result> in_order;
  Stopwatch clock;
  while (auto r = next_result(p, in_order)) {
    if (!r->fault.empty()) {
      report_warning("skipped: " + r->fault);
      p.status.record(ExitCode::Input);
      ++p.skipped;
    }
    if (!consume(*r)) p.request_stop();
    const auto id = static_cast<std::size_t>(r->frame.source_id);
    if (r->fault.empty() && id < p.sources.size()) {
      SourceRecord& rec = p.sources[id];
      ++rec.processed;
      rec.last_ms = clock.elapsed_ms();
      if (rec.first_ms < 0) rec.first_ms = rec.last_ms;
    }
  }
}

// Runs a stage's body; whatever it throws ends in Pipeline::fail as a fatal error.
template <typename Body>
void guarded(Pipeline& p, std::string_view stage, Body&& body) noexcept {
  try {
    body();
  } catch (...) {
    p.fail(std::current_exception(), stage, true);
  }
}

}  // namespace

void ExitStatus::record(ExitCode code) {
  int current = code_.load();
  while (rank(code) > rank(static_cast<ExitCode>(current)) &&
         !code_.compare_exchange_weak(current, static_cast<int>(code))) {
  }
}

void Pipeline::attach(io::FrameSource* source) {
  std::lock_guard lock(mutex_);
  attached_.push_back(source);
  if (stop) source->stop();
}

void Pipeline::detach(io::FrameSource* source) {
  std::lock_guard lock(mutex_);
  std::erase(attached_, source);
}

void Pipeline::request_stop() {
  stop = true;
  std::lock_guard lock(mutex_);
  for (auto* source : attached_) source->stop();
}

void Pipeline::fail(std::exception_ptr error, std::string_view stage, bool fatal) noexcept {
  const Failure f = failure_of(error);
  try {
    report_error(f.code == ExitCode::Internal ? std::string(stage) + " failed: " + f.message : f.message);
  } catch (...) {  // stderr itself failed: the exit code still tells
  }
  status.record(f.code);
  if (!fatal) return;
  try {
    request_stop();
  } catch (...) {  // a mutex error: stop is set, and the closed queue below still ends capture
  }
  frames.close();  // capture ends; the workers drain what is queued, and the last one closes `results`
}

void run_pipeline(Pipeline& p, const CaptureJob& capture, const InferenceJob& inference, int workers,
                  TimingStats& capture_ms, const std::function<bool(Result&)>& consume) {
  g_signal = 0;
  install_stop_handlers();
  const int count = static_cast<int>(capture.sources.size());
  p.sources.assign(capture.sources.size(), SourceRecord{});
  p.frames.open(count);
  std::atomic<int> running_workers{workers};  // the last inference worker to finish closes `results`
  // Several capture threads letterbox side by side: one intra-op thread each, so that they do not oversubscribe the
  // cores the workers need (one source keeps LibTorch's default). Part of at::set_num_threads is process-wide (the
  // count new threads start from, MKL's count), and the last call wins: the workers set theirs once every capture
  // thread has set its own. Measured: without that order a batching worker ran its two-thread forward at one
  // thread's speed (docs/BENCHMARKS.md, many streams).
  const int worker_threads = inference.intra_op_threads > 0 ? inference.intra_op_threads : at::get_num_threads();
  std::latch capture_threads_set(count);
  {
    std::vector<std::jthread> stages;
    try {  // starting a thread can fail (std::system_error): fatal, the ones started still end
      for (int id = 0; id < count; ++id) {
        stages.emplace_back([&p, &capture, &capture_threads_set, id, count] {
          if (count > 1) set_thread_intra_op_threads(1);
          capture_threads_set.count_down();
          guarded(p, "capture", [&] { capture_source(p, capture, id); });
        });
      }
      for (int i = 0; i < workers; ++i) {
        stages.emplace_back([&p, &inference, &running_workers, &capture_threads_set, worker_threads] {
          capture_threads_set.wait();  // every capture thread started (else this thread would not have been)
          guarded(p, "inference", [&] { inference_stage(p, inference, worker_threads); });
          p.frames.close();  // a worker that ends early must not leave capture blocked on a full lane
          if (--running_workers == 0) p.results.close();
        });
      }
    } catch (...) {
      p.fail(std::current_exception(), "pipeline", true);
      p.results.close();  // a worker that never started would never close it
    }
    guarded(p, "output", [&] { output_stage(p, consume); });
    // Output is done (at the end, or after a failure): nothing more is written, so every stage must end now.
    p.request_stop();
    p.frames.close();
    p.results.close();
  }  // the jthreads join here
  for (const auto& rec : p.sources) {
    for (double ms : rec.capture_ms.samples()) capture_ms.add(ms);
  }
}

int received_stop_signal() { return g_signal; }

}  // namespace jitvision::app
