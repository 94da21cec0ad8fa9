// `jitvision bench`: forward-only latency of any TorchScript model, with --video the whole detect pipeline, and with
// --streams N that many concurrent copies of the video, batched across streams and not (bench_streams.cpp).
// Figures are medians over repeated runs after warm-up, with the GPU synchronised before each clock read.
#include <stdlib.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <opencv2/videoio.hpp>

#include "bench_streams.hpp"
#include "commands.hpp"
#include "detect_flags.hpp"
#include "failure.hpp"
#include "jitvision/core/contract.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/forward_timing.hpp"
#include "jitvision/core/official_export.hpp"
#include "jitvision/core/timing.hpp"
#include "json_text.hpp"

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
  cmd->add_option("--model", o.model, "TorchScript model or .pt2 package (detector or digit classifier)")->required();
  cmd->add_option("--device", o.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_flag("--half", o.half, "FP16 (CUDA only); --dtype fp16");
  cmd->add_option("--dtype", o.dtype,
                  "fp32, bf16 or fp16, as for detect (bf16: a detector's body in bfloat16, its Detect head in "
                  "float32; the CPU needs AVX512-BF16 or AMX, else exit 4)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  cmd->add_option("--img", o.img_size, "Square input size for detectors (default: the model's)")
      ->check(CLI::Range(32, 8192));
  cmd->add_option("--shape", o.shape, "Exact input shape BxCxHxW, e.g. 1x3x384x640 (overrides --img)");
  cmd->add_option("--threads", o.threads, "CPU threads (0: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--warmup", o.warmup, "Untimed forwards after the first call")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--iters", o.iters, "Timed forwards")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--video", o.video,
                  "Also run the whole detect pipeline on this video (writes an annotated copy to a temp file)");
  cmd->add_option("--jit-executor", o.jit_executor,
                  "TorchScript graph executor: profiling (LibTorch's default), legacy or unoptimized")
      ->check(CLI::IsMember({"profiling", "legacy", "unoptimized"}))
      ->capture_default_str();
  cmd->add_option("--layout", o.layout, "Weight layout: channels_last (the app's) or contiguous (as exported)")
      ->check(CLI::IsMember({"contiguous", "channels_last"}))
      ->capture_default_str();
  cmd->add_flag("--no-freeze", o.no_freeze, "Run the module unfrozen (the app freezes it: torch::jit::freeze)");
  cmd->add_flag("--onednn-fusion", o.onednn_fusion, "Turn on oneDNN graph fusion (torch.jit.enable_onednn_fusion)");
  auto* video = cmd->get_option("--video");
  cmd->add_option("--workers", o.workers, "Inference workers for the --video pipeline (0: auto, as in detect)")
      ->check(CLI::Range(0, 64));
  auto* streams =
      cmd->add_option("--streams", o.streams,
                      "Instead of one pipeline on --video, N concurrent copies of it: once batched across streams "
                      "(--batch) and once with --batch 1, in the same run")
          ->check(CLI::Range(1, 64));
  cmd->add_option("--batch", o.batch, "Largest batch across streams for the batched --streams run (0: auto)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str()
      ->needs(streams);
  cmd->add_option("--source", o.source,
                  "For --streams: a live stream (URL or GStreamer pipeline) opened N times instead of --video, "
                  "each read as detect reads it (newest frame only); needs --frames")
      ->needs(streams)
      ->excludes(video);
  cmd->add_option("--frames", o.frames, "For --streams: stop each stream after this many frames (0: at its end)")
      ->check(CLI::Range(0LL, 100000000LL))
      ->needs(streams);
  cmd->add_flag("--json", o.json, "Print one JSON object");
  add_trust_model_flag(cmd, o.trust_model);
  return cmd;
}

namespace {

// The input shape to time: --shape, else a detector's (at --img, or for --video the shape its frames get), else a
// classifier's.
std::vector<std::int64_t> bench_shape(const BenchOptions& o, const ModelContract& contract) {
  if (!o.shape.empty()) return parse_shape(o.shape);
  if (contract.classifier) {
    auto shape = contract.classifier->input_shape;
    shape[0] = 1;
    return shape;
  }
  if (!contract.detector) throw UsageError("cannot tell the input shape of " + o.model + ": pass --shape BxCxHxW");
  const auto& c = *contract.detector;
  const std::int64_t size = c.resolve_img_size(o.img_size);
  const std::string& input = o.source.empty() ? o.video : o.source;
  if (input.empty()) return {1, 3, c.dynamic ? size : c.input_h, c.dynamic ? size : c.input_w};
  // Forward-only at the shape the video's frames get, so the pipeline ratio compares like with like.
  cv::VideoCapture cap(input);
  cv::Mat first;
  if (!cap.isOpened() || !cap.read(first) || first.empty()) throw InputError(input + " cannot be read");
  const auto geometry = letterbox_geometry(first.rows, first.cols, size, c.stride, c.letterbox);
  return {1, 3, geometry.out_h, geometry.out_w};
}

InferenceForm inference_form(const BenchOptions& o) {
  return {parse_layout(o.layout), !o.no_freeze, o.onednn_fusion, ""};
}

// A new directory only this user can enter (mkdtemp: unique name, mode 0700) under $TMPDIR, removed with all it
// holds when this goes out of scope. Nothing planted in $TMPDIR beforehand can be followed or overwritten.
class PrivateTempDir {
 public:
  PrivateTempDir() {
    std::error_code ec;
    const auto base = std::filesystem::temp_directory_path(ec);
    std::string name = ((ec ? std::filesystem::path("/tmp") : base) / "jitvision-bench-XXXXXX").string();
    if (!::mkdtemp(name.data()))
      throw OutputError("cannot create a temporary directory " + name + ": " + std::strerror(errno));
    path_ = name;
  }
  ~PrivateTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  PrivateTempDir(const PrivateTempDir&) = delete;
  PrivateTempDir& operator=(const PrivateTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The whole detect pipeline on --video, writing an annotated copy to a file in a private temporary directory.
nlohmann::json bench_video(const BenchOptions& o, std::optional<Precision> precision, double forward_median_ms) {
  const PrivateTempDir temp;
  const auto annotated = temp.path() / "annotated.mp4";
  DetectOptions d;
  d.model = o.model;
  d.trust_model = o.trust_model;
  d.sources = {o.video};
  d.device = o.device;
  if (precision) d.dtype = precision_name(*precision);
  d.img_size = o.img_size;
  d.threads = o.threads;
  d.workers = o.workers;
  d.form = inference_form(o);
  d.save_video = annotated.string();
  d.quiet = true;
  const auto s = run_detect_pipeline(d);
  nlohmann::json stages;
  for (const auto& [name, samples] : s.stages) {
    TimingStats t;
    for (double v : samples) t.add(v);
    stages[name] = stats_json(t);
  }
  const double per_frame_ms = s.steady_fps > 0 ? 1000.0 / s.steady_fps : 0.0;
  return {{"file", escape_invalid_utf8(o.video)},
          {"frames", s.frames},
          {"wall_s", s.wall_ms / 1000.0},
          {"first_result_s", s.first_result_ms / 1000.0},
          {"fps", s.steady_fps},
          {"workers", s.workers},
          {"threads_per_worker", s.threads_per_worker},
          {"per_frame_ms", per_frame_ms},
          {"per_frame_over_forward", forward_median_ms > 0 ? per_frame_ms / forward_median_ms : 0.0},
          {"stages", stages}};
}

void print_video_text(const BenchOptions& o, const nlohmann::json& v) {
  std::cout << "pipeline on " << o.video << ": " << v["frames"].get<std::int64_t>() << " frames, "
            << v["fps"].get<double>() << " FPS steady (" << v["per_frame_ms"].get<double>()
            << " ms/frame = " << v["per_frame_over_forward"].get<double>() << " x forward), wall "
            << v["wall_s"].get<double>() << " s, first result " << v["first_result_s"].get<double>() << " s; "
            << v["workers"].get<int>() << " worker(s) x " << v["threads_per_worker"].get<int>() << " thread(s)\n";
  for (const auto& [name, st] : v["stages"].items()) {
    std::cout << "  " << std::setw(12) << std::left << name << std::right << " median " << st["median_ms"].get<double>()
              << " ms, p90 " << st["p90_ms"].get<double>() << " ms\n";
  }
}

void print_text(const BenchOptions& o, const nlohmann::json& out, const ForwardTimes& t) {
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "model " << o.model << " (" << out["task"].get<std::string>() << ") on "
            << out["device"].get<std::string>() << " " << out["dtype"].get<std::string>() << ", "
            << out["threads"].get<int>() << " threads, input "
            << shape_str(out["shape"].get<std::vector<std::int64_t>>()) << "\n"
            << "load " << out["load_ms"].get<double>() << " ms, first call " << t.first_ms << " ms (" << o.jit_executor
            << " executor; " << o.layout << (o.no_freeze ? ", not frozen" : ", frozen")
            << (o.onednn_fusion ? ", oneDNN fusion" : "") << ")\n"
            << "forward over " << o.iters << " runs after " << o.warmup << " warm-ups: median " << t.forward.median()
            << " ms, p90 " << t.forward.percentile(90) << " ms, min " << t.forward.min() << " ms\n";
  if (out.contains("video")) print_video_text(o, out["video"]);
  if (out.contains("streams")) print_streams_text(std::cout, out["streams"]);
  std::cout << "peak RSS " << out["peak_rss_mb"].get<double>() << " MB" << std::endl;
}

// The model loaded, its contract checked and read, and moved to the device and dtype it is timed in.
struct BenchModel {
  LoadedModel loaded;
  ModelContract contract;
  double load_ms = 0;
};

BenchModel load_bench_model(const BenchOptions& o) {
  Stopwatch load_clock;
  auto model = load_model(o.model, {o.trust_model});
  const double load_ms = load_clock.elapsed_ms();
  auto contract = read_contract(model);
  probe_contract(model, contract);  // an official dynamic export takes --img
  if ((!o.video.empty() || !o.source.empty()) && contract.kind != ModelKind::Detector)
    throw UsageError(std::string(o.video.empty() ? "--source" : "--video") + " needs a detector model");
  return {std::move(model), std::move(contract), load_ms};
}

nlohmann::json forward_json(const BenchOptions& o, const BenchModel& m, const std::vector<std::int64_t>& shape,
                            bool cuda, const PrecisionPlan& plan, const ForwardTimes& t) {
  const auto dtype = plan.dtype;
  return {{"model", escape_invalid_utf8(o.model)},
          {"task", m.contract.task},
          {"device", cuda ? "cuda" : "cpu"},
          {"dtype", dtype == torch::kBFloat16 ? "bfloat16"
                    : dtype == torch::kHalf   ? "float16"
                                              : "float32"},
          {"fp32_head", plan.fp32_head},
          {"threads", at::get_num_threads()},
          {"shape", shape},
          {"load_ms", m.load_ms},
          {"first_call_ms", t.first_ms},
          {"warmup", o.warmup},
          {"warmup_ms", t.warmup_ms},
          {"jit_executor", o.jit_executor},
          {"layout", o.layout},
          {"frozen", !o.no_freeze},
          {"onednn_fusion", o.onednn_fusion},
          {"forward", stats_json(t.forward)}};
}

}  // namespace

int run_bench(const BenchOptions& o) {
  check_streams_options(o);
  if (o.threads > 0) at::set_num_threads(o.threads);
  set_graph_executor(parse_graph_executor(o.jit_executor));
  const auto device = resolve_device(parse_device_choice(o.device));
  const auto precision = resolve_precision_flags(o.dtype, o.half, device);

  auto m = load_bench_model(o);
  const auto shape = bench_shape(o, m.contract);
  const auto plan = plan_precision(m.contract, m.loaded.format, precision, device);
  auto form = inference_form(o);
  form.fp32_head = plan.fp32_head;
  Model& runner = *m.loaded.model;
  runner.to(device, plan.dtype, form);
  const auto t =
      time_forward([&](const torch::Tensor& x) { runner.forward(x); }, shape, device, plan.dtype, o.warmup, o.iters);

  auto out = forward_json(o, m, shape, device.is_cuda(), plan, t);
  if (o.streams > 0) {
    out["streams"] = bench_streams(o, precision, inference_form(o));
  } else if (!o.video.empty()) {
    out["video"] = bench_video(o, precision, t.forward.median());
  }
  out["peak_rss_mb"] = peak_rss_mb();
  if (o.json) {
    std::cout << out.dump() << std::endl;
  } else {
    print_text(o, out, t);
  }
  check_stdout();
  return 0;
}

}  // namespace jitvision::app
