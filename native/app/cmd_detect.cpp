// `jitvision detect`: YOLOv5 on images, video files, cameras and streams.
// Three threads joined by bounded queues: capture -> inference -> output (this thread, which also owns the
// window). One stop flag ends them all: end of input, SIGINT/SIGTERM, `q` in the window, or --max-frames.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "bounded_queue.hpp"
#include "in_order.hpp"
#include "commands.hpp"
#include "jitvision/core/detector.hpp"
#include "jitvision/core/digits.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/image.hpp"
#include "jitvision/core/timing.hpp"
#include "jitvision/io/sinks.hpp"
#include "jitvision/io/sources.hpp"
#include "paths.hpp"

namespace jitvision::app {
namespace {

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) { g_signal = sig; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// OpenCV's SIMD resize for frames on the CPU: bit-exact with the core's tensor resize, several times faster.
torch::Tensor opencv_resize(const torch::Tensor& image, std::int64_t out_h, std::int64_t out_w) {
  TORCH_CHECK(image.device().is_cpu() && image.scalar_type() == torch::kUInt8 && image.stride(2) == 1 &&
              image.stride(1) == image.size(2));
  const int channels = static_cast<int>(image.size(2));
  const cv::Mat src(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), CV_8UC(channels),
                    image.data_ptr(), static_cast<std::size_t>(image.stride(0)));
  auto out = torch::empty({out_h, out_w, image.size(2)}, image.options());
  cv::Mat dst(static_cast<int>(out_h), static_cast<int>(out_w), CV_8UC(channels), out.data_ptr());
  cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
  return out;
}

struct CapturedFrame {
  std::int64_t seq = 0;  // capture order over all sources: the output puts results back in this order
  io::Frame frame;
  PreparedFrame prepared;  // letterboxed in the capture thread, so it overlaps the previous frame's forward
};

struct Result {
  std::int64_t seq = 0;
  io::Frame frame;
  Detections detections;
  StageTimes times;
  std::vector<DigitResult> reads;  // one per detection when a digit reader is set
  double read_ms = 0;
};

// Reads the digit inside each detection: the crop, widened by 20% on each side so that its outer ring is paper
// (the ink box is found again inside it), is normalised MNIST-style and classified in one batch. A crop with no
// ink gets digit -1.
std::vector<DigitResult> read_digits(const DigitClassifier& reader, const cv::Mat& frame, const Detections& dets) {
  std::vector<DigitResult> reads(dets.size());
  std::vector<torch::Tensor> crops;
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < dets.size(); ++i) {
    const auto& d = dets[i];
    const float mx = 0.2f * (d.x2 - d.x1), my = 0.2f * (d.y2 - d.y1);
    const int x1 = std::clamp(static_cast<int>(std::floor(d.x1 - mx)), 0, frame.cols);
    const int y1 = std::clamp(static_cast<int>(std::floor(d.y1 - my)), 0, frame.rows);
    const int x2 = std::clamp(static_cast<int>(std::ceil(d.x2 + mx)), 0, frame.cols);
    const int y2 = std::clamp(static_cast<int>(std::ceil(d.y2 + my)), 0, frame.rows);
    if (x2 - x1 < 2 || y2 - y1 < 2) continue;
    const cv::Mat crop = frame(cv::Rect(x1, y1, x2 - x1, y2 - y1));
    try {
      crops.push_back(normalize_digit(as_tensor(ImageView{crop.data, crop.rows, crop.cols, crop.channels(), crop.step[0]})));
      which.push_back(i);
    } catch (const InputError&) {
      // blank crop: leave this detection unread
    }
  }
  if (!crops.empty()) {
    const auto results = reader.classify(torch::stack(crops));
    for (std::size_t k = 0; k < which.size(); ++k) reads[which[k]] = results[k];
  }
  return reads;
}

// Everything the threads share: capture, the inference workers and output.
class Pipeline {
 public:
  std::atomic<bool> stop{false};
  std::atomic<int> exit_code{0};
  std::atomic<int> running_workers{0};  // the last inference worker to finish closes `results`
  BoundedQueue<CapturedFrame> frames{2};
  BoundedQueue<Result> results{4};

  void set_source(io::FrameSource* s) {
    std::lock_guard lock(mutex_);
    source_ = s;
    if (s && stop) s->stop();
  }
  void request_stop() {
    stop = true;
    std::lock_guard lock(mutex_);
    if (source_) source_->stop();
  }
  // Keeps the most serious failure: a lost stream or output error outranks an unreadable input.
  void fail(ExitCode code) {
    int expected = exit_code.load();
    while (static_cast<int>(code) > expected && !exit_code.compare_exchange_weak(expected, static_cast<int>(code))) {
    }
  }

 private:
  std::mutex mutex_;
  io::FrameSource* source_ = nullptr;
};

void capture_loop(Pipeline& p, const DetectOptions& o, const io::SourceOptions& so, Detector& detector,
                  TimingStats& capture_ms) {
  std::int64_t seq = 0;  // numbers frames over all sources, in capture order
  for (const auto& spec : o.sources) {
    if (p.stop) break;
    std::unique_ptr<io::FrameSource> source;
    try {
      source = io::open_source(spec, so);
    } catch (const Error& e) {
      report_error(e.what());
      p.fail(e.code());
      continue;
    }
    p.set_source(source.get());
    long long taken = 0;
    while (!p.stop && (o.max_frames <= 0 || taken < o.max_frames)) {
      try {
        Stopwatch sw;
        auto frame = source->next();
        if (!frame) break;
        capture_ms.add(sw.elapsed_ms());
        ++taken;
        const auto& m = frame->image;
        auto prepared = detector.prepare(as_tensor(ImageView{m.data, m.rows, m.cols, m.channels(), m.step[0]}));
        if (!p.frames.push(CapturedFrame{seq++, std::move(*frame), std::move(prepared)})) break;
      } catch (const InputError& e) {  // one unreadable image of a list: report it and go on
        report_error(e.what());
        p.fail(e.code());
      } catch (const Error& e) {  // the source is gone for good
        report_error(e.what());
        p.fail(e.code());
        break;
      } catch (const c10::Error& e) {
        report_error(std::string("preprocessing failed: ") + e.what_without_backtrace());
        p.fail(ExitCode::Internal);
        break;
      } catch (const std::exception& e) {  // e.g. out of memory: stop this source, never terminate the process
        report_error(std::string("capture failed: ") + e.what());
        p.fail(ExitCode::Internal);
        break;
      }
    }
    p.set_source(nullptr);
  }
  p.frames.close();
}

// One inference worker; several run side by side on the CPU (see resolve_workers), each with its own intra-op
// thread count (OpenMP's is per thread).
void inference_loop(Pipeline& p, Detector& detector, const DigitClassifier* reader, int intra_op_threads) {
  try {
    if (intra_op_threads > 0) at::set_num_threads(intra_op_threads);
    while (auto item = p.frames.pop()) {
      Result r;
      r.seq = item->seq;
      r.detections = detector.infer(item->prepared, &r.times);
      if (reader) {
        Stopwatch sw;
        r.reads = read_digits(*reader, item->frame.image, r.detections);
        r.read_ms = sw.elapsed_ms();
      }
      r.frame = std::move(item->frame);
      if (!p.results.push(std::move(r))) break;
    }
  } catch (const Error& e) {
    report_error(e.what());
    p.fail(e.code());
    p.request_stop();
  } catch (const c10::Error& e) {
    report_error(std::string("inference failed: ") + e.what_without_backtrace());
    p.fail(ExitCode::Internal);
    p.request_stop();
  } catch (const std::exception& e) {
    report_error(std::string("inference failed: ") + e.what());
    p.fail(ExitCode::Internal);
    p.request_stop();
  }
  p.frames.close();
  if (--p.running_workers == 0) p.results.close();
}

std::string class_name(int cls, const std::vector<std::string>& names) {
  return cls >= 0 && cls < static_cast<int>(names.size()) ? names[cls] : std::to_string(cls);
}

nlohmann::json result_json(const Result& r, const std::vector<std::string>& names) {
  auto dets = nlohmann::json::array();
  for (std::size_t i = 0; i < r.detections.size(); ++i) {
    const auto& d = r.detections[i];
    nlohmann::json det{{"cls", d.cls}, {"name", class_name(d.cls, names)}, {"conf", d.conf}, {"xyxy", {d.x1, d.y1, d.x2, d.y2}}};
    if (!r.reads.empty()) {
      det["digit"] = r.reads[i].digit;
      det["digit_prob"] = r.reads[i].prob;
    }
    dets.push_back(std::move(det));
  }
  return {{"source", r.frame.source},
          {"frame", r.frame.index},
          {"shape", {r.frame.image.rows, r.frame.image.cols}},
          {"detections", std::move(dets)}};
}

std::string fmt(double v, int precision = 1) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string stage(const char* name, const TimingStats& s) {
  return std::string(name) + " " + fmt(s.median()) + "/" + fmt(s.percentile(90));
}

}  // namespace

CLI::App* add_detect_command(CLI::App& app, DetectOptions& o) {
  auto* cmd = app.add_subcommand("detect", "Detect objects with a YOLOv5 TorchScript model in images, videos, cameras and streams");
  cmd->add_option("--model", o.model, "YOLOv5 TorchScript file: ours (python -m jitvision yolov5 import) or an official export")
      ->required();
  cmd->add_option("--source", o.sources,
                  "Image, directory, glob, video file, camera index (0), http(s)/rtsp URL or GStreamer pipeline; repeatable")
      ->required();
  cmd->add_option("--device", o.device, "auto (CUDA if available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--classes", o.classes, "Keep only these class indices, e.g. 0,2")->delimiter(',');
  cmd->add_option("--json", o.json, "Write one JSON line per frame to FILE, or - for standard output");
  add_stream_options(cmd, o);
  return cmd;
}

void add_stream_options(CLI::App* cmd, DetectOptions& o) {
  cmd->add_flag("--half", o.half, "FP16 inference (CUDA only; ignored with a warning on the CPU)");
  cmd->add_option("--img", o.img, "Inference size in pixels (longest side; rounded up to the stride). Default: the model's")
      ->check(CLI::Range(32, 8192));
  cmd->add_option("--conf", o.conf, "Confidence threshold")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--iou", o.iou, "NMS IoU threshold")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--max-det", o.max_det, "Maximum detections per frame")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_flag("--show", o.show, "Show a window with the detections (needs a display; q or Esc quits)");
  cmd->add_option("--save-dir", o.save_dir, "Save annotated images here (video frames as <name>_<frame>.jpg)");
  cmd->add_option("--save-video", o.save_video, "Write all annotated frames into one video file (.mp4, .avi, .mkv)");
  cmd->add_option("--max-frames", o.max_frames, "Stop each source after N frames (0: no limit)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--reconnect", o.reconnect, "Reopen attempts when a live source drops, with back-off")
      ->check(CLI::Range(0, 1000))->capture_default_str();
  cmd->add_option("--open-timeout", o.open_timeout_ms, "Milliseconds to wait for a network stream to open")
      ->check(CLI::Range(100, 600000))->capture_default_str();
  cmd->add_option("--read-timeout", o.read_timeout_ms, "Milliseconds without a frame before a live source counts as dropped")
      ->check(CLI::Range(100, 600000))->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads for inference (0: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--workers", o.workers,
                  "Frames in the model at once on the CPU, each with threads/N threads (0: auto, 2 when there are 2 or "
                  "more threads; 1 gives the lowest latency per frame)")
      ->check(CLI::Range(0, 64));
  cmd->add_flag("--quiet", o.quiet, "Print no summary");
}

namespace {

// How many inference workers run side by side, and the intra-op threads of each. On the CPU, one forward
// spread over all cores stalls at every OpenMP barrier whenever decoding, letterboxing or encoding takes one of
// its cores; two workers with half the threads each keep the cores busy (docs/BENCHMARKS.md has the figures).
// On CUDA one worker feeds the GPU.
std::pair<int, int> resolve_workers(const DetectOptions& o, const torch::Device& device) {
  if (device.is_cuda()) {
    if (o.workers > 1) report_warning("--workers " + std::to_string(o.workers) + " is for the CPU; using 1 on CUDA");
    return {1, 0};
  }
  const int threads = std::max(1, at::get_num_threads());
  int workers = o.workers > 0 ? o.workers : (threads >= 2 ? 2 : 1);
  if (workers > threads) {
    if (o.workers > 0) {
      report_warning("--workers " + std::to_string(o.workers) + " exceeds the " + std::to_string(threads) +
                     " CPU threads; using " + std::to_string(threads));
    }
    workers = threads;
  }
  return {workers, workers > 1 ? threads / workers : 0};
}

}  // namespace

DetectSummary run_detect_pipeline(const DetectOptions& o) {
  Stopwatch since_start;
  if (o.show && !io::display_available()) {
    throw OutputError("--show needs a display, but none is reachable (DISPLAY is unset or the X server refuses)");
  }
  if (o.threads > 0) at::set_num_threads(o.threads);
  const auto device = resolve_device(parse_device_choice(o.device));

  DetectorOptions dopt;
  dopt.img_size = o.img;
  dopt.nms = NmsOptions{o.conf, o.iou, o.max_det, o.classes};
  dopt.precision = Precision::Float32;
  if (o.half) {
    if (device.is_cuda()) {
      dopt.precision = Precision::Float16;
    } else {
      report_warning("--half needs CUDA; running in FP32 on the CPU");
    }
  }
  Detector detector(load_model(o.model), device, dopt);
  detector.set_host_resize(opencv_resize);
  std::unique_ptr<DigitClassifier> reader;
  if (!o.reader_model.empty()) reader = std::make_unique<DigitClassifier>(load_model(o.reader_model), device);
  const auto& contract = detector.contract();
  if (o.img > 0 && !contract.dynamic && o.img != detector.img_size()) {
    report_warning("model " + o.model + " has a fixed input of " + std::to_string(contract.input_h) + "x" +
                   std::to_string(contract.input_w) + "; --img " + std::to_string(o.img) + " is ignored");
  } else if (o.img > 0 && o.img % contract.stride != 0) {
    report_warning("--img " + std::to_string(o.img) + " is not a multiple of the model's stride " +
                   std::to_string(contract.stride) + "; rounded up to " + std::to_string(detector.img_size()));
  }

  // Outputs are opened before any input, so a bad output path fails fast.
  std::unique_ptr<io::JsonLinesSink> json;
  if (!o.json.empty()) json = std::make_unique<io::JsonLinesSink>(o.json);
  std::unique_ptr<io::ImageDirSink> image_dir;
  if (!o.save_dir.empty()) image_dir = std::make_unique<io::ImageDirSink>(o.save_dir);
  // The video's frame size is fixed by its first frame; the file itself is checked (extension, directory) now.
  std::unique_ptr<io::VideoFileSink> video;
  if (!o.save_video.empty()) video = std::make_unique<io::VideoFileSink>(o.save_video, 30.0);
  std::unique_ptr<io::Window> window;
  if (o.show) window = std::make_unique<io::Window>("jitvision detect");

  io::SourceOptions so;
  so.open_timeout_ms = o.open_timeout_ms;
  so.read_timeout_ms = o.read_timeout_ms;
  so.reconnect = o.reconnect;
  io::configure_capture_backends(so);  // sets process environment: before any thread starts

  g_signal = 0;
  install_stop_handlers();
  Pipeline p;
  TimingStats capture_ms, pre_ms, inf_ms, post_ms, read_ms, out_ms;
  const auto [workers, intra_op] = resolve_workers(o, device);
  std::thread capture([&] { capture_loop(p, o, so, detector, capture_ms); });
  p.running_workers = workers;
  std::vector<std::thread> inference;
  for (int i = 0; i < workers; ++i) {
    inference.emplace_back([&, intra_op = intra_op] { inference_loop(p, detector, reader.get(), intra_op); });
  }

  std::int64_t frames = 0;
  double first_result_ms = -1;
  Stopwatch steady;  // restarted at the first result: the FPS figure is steady state
  TimingStats fps_window;
  Stopwatch last_frame;
  const bool need_drawing = window || image_dir || !o.save_video.empty();
  // Workers finish frames out of order: results wait until every earlier frame is out. Once the workers are done,
  // a gap (a frame lost to a failure or a stop) is skipped.
  InOrder<Result> in_order;
  const auto next_result = [&]() -> std::optional<Result> {
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
  };
  try {
    while (auto r = next_result()) {
      Stopwatch sw;
      if (first_result_ms < 0) {
        first_result_ms = since_start.elapsed_ms();
        steady.restart();
      }
      pre_ms.add(r->times.preprocess_ms);
      inf_ms.add(r->times.inference_ms);
      post_ms.add(r->times.postprocess_ms);
      if (reader) read_ms.add(r->read_ms);
      if (json) json->write_line(result_json(*r, contract.names).dump());
      if (need_drawing) {
        const double frame_ms = last_frame.elapsed_ms();
        last_frame.restart();
        cv::Mat& canvas = r->frame.image;
        std::vector<std::string> labels;
        for (std::size_t i = 0; i < r->reads.size(); ++i) {
          const auto& d = r->detections[i];
          const auto& read = r->reads[i];
          labels.push_back((read.digit >= 0 ? std::to_string(read.digit) + " read " + fmt(read.prob, 2) : "? ") +
                           " det " + class_name(d.cls, contract.names) + " " + fmt(d.conf, 2));
        }
        io::draw_detections(canvas, r->detections, contract.names,
                            window && frames > 0 ? fmt(1000.0 / std::max(frame_ms, 1e-3)) + " FPS" : "", labels);
        if (image_dir) {
          image_dir->write(canvas, r->frame.source, r->frame.index,
                           io::classify_source(r->frame.source) == io::SourceKind::ImageFiles);
        }
        if (video) video->write(canvas);
        if (window && !window->show(canvas)) p.request_stop();
      }
      ++frames;
      out_ms.add(sw.elapsed_ms());
    }
  } catch (const Error& e) {
    report_error(e.what());
    p.fail(e.code());
    p.request_stop();
    p.frames.close();
    p.results.close();
  }
  p.request_stop();
  p.frames.close();
  p.results.close();
  capture.join();
  for (auto& t : inference) t.join();
  const double steady_s = steady.elapsed_ms() / 1000.0;
  if (video) video->close();

  DetectSummary summary;
  summary.frames = frames;
  summary.wall_ms = since_start.elapsed_ms();
  summary.first_result_ms = first_result_ms;
  summary.steady_fps = frames > 1 ? static_cast<double>(frames - 1) / std::max(steady_s, 1e-9) : 0.0;
  summary.stages = {{"capture", capture_ms.samples()},
                    {"preprocess", pre_ms.samples()},
                    {"inference", inf_ms.samples()},
                    {"postprocess", post_ms.samples()},
                    {"read", read_ms.samples()},
                    {"output", out_ms.samples()}};
  summary.exit_code = p.exit_code.load();
  summary.workers = workers;
  summary.threads_per_worker = intra_op > 0 ? intra_op : at::get_num_threads();
  if (!o.quiet) {
    std::cerr << "jitvision: " << frames << " frames from " << o.sources.size() << " source(s) on "
              << (device.is_cuda() ? "CUDA" : "CPU") << (dopt.precision == Precision::Float16 ? " FP16" : "")
              << ", input " << detector.img_size() << (contract.dynamic ? " (rect)" : " (square)") << ", "
              << workers << (workers == 1 ? " worker" : " workers") << " x " << summary.threads_per_worker
              << (summary.threads_per_worker == 1 ? " thread" : " threads");
    if (frames > 1) std::cerr << ", " << fmt(summary.steady_fps) << " FPS";
    if (first_result_ms >= 0) std::cerr << ", first result after " << fmt(first_result_ms / 1000.0, 2) << " s";
    std::cerr << "\njitvision: per-frame ms (median/p90): " << stage("capture", capture_ms) << ", "
              << stage("preprocess", pre_ms) << ", " << stage("inference", inf_ms) << ", "
              << stage("postprocess", post_ms) << ", " << (reader ? stage("read digits", read_ms) + ", " : "")
              << stage("output", out_ms) << std::endl;
    if (g_signal) std::cerr << "jitvision: stopped by signal " << g_signal << std::endl;
  }
  return summary;
}

int run_detect(const DetectOptions& o) { return run_detect_pipeline(o).exit_code; }

}  // namespace jitvision::app
