#include "pipeline.hpp"

#include <csignal>
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

// Reads one source to its end (or --max-frames, or a stop). A frame that cannot be used (io::FrameError: undecodable,
// over --max-pixels, impossible to letterbox) goes on in its place as a fault; an argument of an image list that
// names nothing readable is reported and skipped; any other jitvision::Error (a source that cannot be opened or is lost
// for good) ends this source only. Anything else propagates: it is fatal.
void capture_source(Pipeline& p, const CaptureJob& job, const std::string& spec, std::int64_t& seq,
                    TimingStats& capture_ms, int id) {
  std::unique_ptr<io::FrameSource> source;
  try {
    source = io::open_source(spec, job.source_options);
  } catch (const Error&) {
    p.fail(std::current_exception(), "capture", false);
    return;
  }
  p.set_source(source.get());
  struct Unset {  // however this function ends, the pipeline must not keep a pointer to the closed source
    Pipeline& p;
    ~Unset() { p.set_source(nullptr); }
  } unset{p};
  long long taken = 0;
  while (!p.stop && (job.max_frames <= 0 || taken < job.max_frames)) {
    try {
      Stopwatch sw;
      auto frame = source->next();
      if (!frame) break;
      frame->source_id = id;
      if (frame->index % std::max(1LL, job.vid_stride) != 0) continue;  // --vid-stride
      capture_ms.add(sw.elapsed_ms());
      ++taken;
      auto prepared = prepare_frame(job, *frame);
      if (!p.frames.push(CapturedFrame{seq++, std::move(*frame), source->fps(), std::move(prepared), {}})) break;
    } catch (const io::FrameError& e) {  // one bad frame: skipped, reported in its place by the output stage
      ++taken;
      CapturedFrame fault;
      fault.seq = seq++;
      fault.frame.source = e.source();
      fault.frame.index = e.index();
      fault.frame.source_id = id;
      fault.fault = e.what();
      if (!p.frames.push(std::move(fault))) break;
    } catch (const InputError&) {  // one unreadable argument of a list (missing, not a file): report it and go on
      p.fail(std::current_exception(), "capture", false);
    } catch (const Error&) {  // the source is gone for good
      p.fail(std::current_exception(), "capture", false);
      break;
    }
  }
}

void capture_stage(Pipeline& p, const CaptureJob& job, TimingStats& capture_ms) {
  std::int64_t seq = 0;  // numbers frames over all sources, in capture order
  for (std::size_t i = 0; i < job.sources.size(); ++i) {
    if (p.stop) break;
    capture_source(p, job, job.sources[i], seq, capture_ms, static_cast<int>(i));
  }
}

// One inference worker; several run side by side on the CPU, each with its own intra-op thread count (OpenMP's
// is per thread).
void inference_stage(Pipeline& p, const InferenceJob& job) {
  if (job.intra_op_threads > 0) at::set_num_threads(job.intra_op_threads);
  while (auto item = p.frames.pop()) {
    Result r;
    r.seq = item->seq;
    r.source_fps = item->source_fps;
    if (!item->fault.empty()) {  // passed on in its place, to be reported in capture order
      r.frame = std::move(item->frame);
      r.fault = std::move(item->fault);
      if (!p.results.push(std::move(r))) break;
      continue;
    }
    // The model's own code failing is a model error (exit 3), not a bug of ours.
    const auto failed = [&] {
      return "the model failed on frame " + std::to_string(item->frame.index) + " of " + item->frame.source;
    };
    r.input_h = item->prepared.geometry.out_h;
    r.input_w = item->prepared.geometry.out_w;
    r.detections = run_model([&] { return job.detector->infer(item->prepared, &r.times); }, failed);
    if (job.reader) {
      Stopwatch sw;
      r.reads = run_model([&] { return read_digits(*job.reader, item->frame.image, r.detections); }, failed);
      r.read_ms = sw.elapsed_ms();
    }
    r.frame = std::move(item->frame);
    if (!p.results.push(std::move(r))) break;
  }
}

// Results in capture order. Workers finish frames out of order: a result waits until every earlier frame is out.
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
  while (auto r = next_result(p, in_order)) {
    if (!r->fault.empty()) {
      report_warning("skipped: " + r->fault);
      p.status.record(ExitCode::Input);
      ++p.skipped;
    }
    if (!consume(*r)) p.request_stop();
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

void Pipeline::set_source(io::FrameSource* source) {
  std::lock_guard lock(mutex_);
  source_ = source;
  if (source && stop) source->stop();
}

void Pipeline::request_stop() {
  stop = true;
  std::lock_guard lock(mutex_);
  if (source_) source_->stop();
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
  std::atomic<int> running_workers{workers};  // the last inference worker to finish closes `results`
  {
    std::vector<std::jthread> stages;
    try {  // starting a thread can fail (std::system_error): fatal, the ones started still end
      stages.emplace_back([&p, &capture, &capture_ms] {
        guarded(p, "capture", [&] { capture_stage(p, capture, capture_ms); });
        p.frames.close();
      });
      for (int i = 0; i < workers; ++i) {
        stages.emplace_back([&p, &inference, &running_workers] {
          guarded(p, "inference", [&] { inference_stage(p, inference); });
          p.frames.close();  // a worker that ends early must not leave capture blocked on a full queue
          if (--running_workers == 0) p.results.close();
        });
      }
    } catch (...) {
      p.fail(std::current_exception(), "pipeline", true);
    }
    guarded(p, "output", [&] { output_stage(p, consume); });
    // Output is done (at the end, or after a failure): nothing more is written, so every stage must end now.
    p.request_stop();
    p.frames.close();
    p.results.close();
  }  // the jthreads join here
}

int received_stop_signal() { return g_signal; }

}  // namespace jitvision::app
