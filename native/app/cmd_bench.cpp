// `jitvision bench`: forward-only latency of any TorchScript model, and with --video the whole detect pipeline.
// Figures are medians over repeated runs after warm-up, with the GPU synchronised before each clock read.
#include <sys/resource.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <opencv2/videoio.hpp>

#include "commands.hpp"
#include "jitvision/core/detector.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/timing.hpp"

namespace jitvision::app {
namespace {

std::vector<std::int64_t> parse_shape(const std::string& text) {
  std::vector<std::int64_t> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    try {
      dims.push_back(std::stoll(part));
    } catch (const std::exception&) {
      dims.clear();
      break;
    }
  }
  if (dims.size() != 4 || std::any_of(dims.begin(), dims.end(), [](auto d) { return d <= 0; })) {
    throw UsageError("--shape must look like 1x3x384x640 (BxCxHxW), got '" + text + "'");
  }
  return dims;
}

nlohmann::json stats_json(const TimingStats& s) {
  return {{"median_ms", s.median()}, {"p90_ms", s.percentile(90)}, {"min_ms", s.min()}, {"n", s.count()}};
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o) {
  auto* cmd = app.add_subcommand("bench", "Measure forward latency (and with --video the full detect pipeline)");
  cmd->add_option("--model", o.model, "TorchScript model (detector or digit classifier)")->required();
  cmd->add_option("--device", o.device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_flag("--half", o.half, "FP16 (CUDA only)");
  cmd->add_option("--img", o.img, "Square input size for detectors (default: the model's)")->check(CLI::Range(32, 8192));
  cmd->add_option("--shape", o.shape, "Exact input shape BxCxHxW, e.g. 1x3x384x640 (overrides --img)");
  cmd->add_option("--threads", o.threads, "CPU threads (0: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--warmup", o.warmup, "Untimed forwards after the first call")->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--iters", o.iters, "Timed forwards")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--video", o.video, "Also run the whole detect pipeline on this video (writes an annotated copy to a temp file)");
  cmd->add_option("--jit-executor", o.jit_executor,
                  "TorchScript graph executor: profiling (LibTorch's default), legacy or unoptimized")
      ->check(CLI::IsMember({"profiling", "legacy", "unoptimized"}))
      ->capture_default_str();
  cmd->add_option("--workers", o.workers, "Inference workers for the --video pipeline (0: auto, as in detect)")
      ->check(CLI::Range(0, 64));
  cmd->add_flag("--json", o.json, "Print one JSON object");
  return cmd;
}

int run_bench(const BenchOptions& o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  set_graph_executor(parse_graph_executor(o.jit_executor));
  const auto device = resolve_device(parse_device_choice(o.device));
  const bool half = o.half && device.is_cuda();
  if (o.half && !half) report_warning("--half needs CUDA; measuring FP32 on the CPU");
  const auto dtype = half ? torch::kHalf : torch::kFloat32;

  Stopwatch load_clock;
  auto model = load_model(o.model);
  const double load_ms = load_clock.elapsed_ms();
  const std::string task = model_task(model).empty() && model.official_config.is_object() ? "detect" : model_task(model);

  std::vector<std::int64_t> shape;
  nlohmann::json video_plan;
  if (!o.shape.empty()) {
    shape = parse_shape(o.shape);
  } else if (task == "detect") {
    const auto contract = read_detector_contract(model);
    std::int64_t size = o.img > 0 ? round_up_to_stride(o.img, contract.stride) : contract.img_size;
    if (!contract.dynamic) size = contract.input_h;
    shape = {1, 3, size, contract.dynamic ? size : contract.input_w};
    if (!o.video.empty()) {
      // Forward-only at the shape the video's frames get, so the pipeline ratio compares like with like.
      cv::VideoCapture cap(o.video);
      cv::Mat first;
      if (!cap.isOpened() || !cap.read(first) || first.empty()) throw InputError("video " + o.video + " cannot be read");
      const auto plan = plan_letterbox(first.rows, first.cols, size, contract.stride, contract.letterbox);
      shape = {1, 3, plan.out_h, plan.out_w};
    }
  } else if (task == "digits") {
    shape = {1, 1, 28, 28};
  } else {
    throw UsageError("cannot tell the input shape of " + o.model + ": pass --shape BxCxHxW");
  }

  auto module = model.module;
  module.to(device, dtype);
  torch::InferenceMode guard;
  const auto input = torch::rand(shape, torch::TensorOptions(device).dtype(dtype));
  const auto run_once = [&] {
    Stopwatch sw;
    module.forward({input});
    synchronize(device);
    return sw.elapsed_ms();
  };
  const double first_ms = run_once();
  std::vector<double> warmup_ms;  // each warm-up call: how fast the executor reaches its steady state
  for (int i = 0; i < o.warmup; ++i) warmup_ms.push_back(run_once());
  TimingStats fwd;
  for (int i = 0; i < o.iters; ++i) fwd.add(run_once());

  nlohmann::json out{{"model", o.model},
                     {"task", task},
                     {"device", device.is_cuda() ? "cuda" : "cpu"},
                     {"dtype", half ? "float16" : "float32"},
                     {"threads", at::get_num_threads()},
                     {"shape", shape},
                     {"load_ms", load_ms},
                     {"first_call_ms", first_ms},
                     {"warmup", o.warmup},
                     {"warmup_ms", warmup_ms},
                     {"jit_executor", o.jit_executor},
                     {"forward", stats_json(fwd)}};

  if (!o.video.empty()) {
    if (task != "detect") throw UsageError("--video needs a detector model");
    const auto annotated = std::filesystem::temp_directory_path() / "jitvision-bench.mp4";
    DetectOptions d;
    d.model = o.model;
    d.sources = {o.video};
    d.device = o.device;
    d.half = half;
    d.img = o.img;
    d.threads = o.threads;
    d.workers = o.workers;
    d.save_video = annotated.string();
    d.quiet = true;
    const auto s = run_detect_pipeline(d);
    std::filesystem::remove(annotated);
    nlohmann::json stages;
    for (const auto& [name, samples] : s.stages) {
      TimingStats t;
      for (double v : samples) t.add(v);
      stages[name] = stats_json(t);
    }
    const double per_frame_ms = s.steady_fps > 0 ? 1000.0 / s.steady_fps : 0.0;
    out["video"] = {{"file", o.video},
                    {"frames", s.frames},
                    {"wall_s", s.wall_ms / 1000.0},
                    {"first_result_s", s.first_result_ms / 1000.0},
                    {"fps", s.steady_fps},
                    {"workers", s.workers},
                    {"threads_per_worker", s.threads_per_worker},
                    {"per_frame_ms", per_frame_ms},
                    {"per_frame_over_forward", fwd.median() > 0 ? per_frame_ms / fwd.median() : 0.0},
                    {"stages", stages}};
  }
  out["peak_rss_mb"] = peak_rss_mb();

  if (o.json) {
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "model " << o.model << " (" << task << ") on " << out["device"].get<std::string>() << " "
            << out["dtype"].get<std::string>() << ", " << at::get_num_threads() << " threads, input "
            << shape_str(shape) << "\n"
            << "load " << load_ms << " ms, first call " << first_ms << " ms (" << o.jit_executor << " executor)\n"
            << "forward over " << o.iters << " runs after " << o.warmup << " warm-ups: median " << fwd.median()
            << " ms, p90 " << fwd.percentile(90) << " ms, min " << fwd.min() << " ms\n";
  if (out.contains("video")) {
    const auto& v = out["video"];
    std::cout << "pipeline on " << o.video << ": " << v["frames"].get<std::int64_t>() << " frames, "
              << v["fps"].get<double>() << " FPS steady (" << v["per_frame_ms"].get<double>() << " ms/frame = "
              << v["per_frame_over_forward"].get<double>() << " x forward), wall " << v["wall_s"].get<double>()
              << " s, first result " << v["first_result_s"].get<double>() << " s; "
              << v["workers"].get<int>() << " worker(s) x " << v["threads_per_worker"].get<int>() << " thread(s)\n";
    for (const auto& [name, st] : v["stages"].items()) {
      std::cout << "  " << std::setw(12) << std::left << name << std::right << " median "
                << st["median_ms"].get<double>() << " ms, p90 " << st["p90_ms"].get<double>() << " ms\n";
    }
  }
  std::cout << "peak RSS " << out["peak_rss_mb"].get<double>() << " MB" << std::endl;
  return 0;
}

}  // namespace jitvision::app
