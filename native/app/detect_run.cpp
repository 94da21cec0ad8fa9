// run_detect_pipeline: loads the models, opens the outputs, runs the pipeline and summarises it.
#include <ATen/Parallel.h>
#include <opencv2/imgproc.hpp>

#include "commands.hpp"
#include "detect_flags.hpp"
#include "failure.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/image.hpp"
#include "jitvision/remote/triton_model.hpp"
#include "output_paths.hpp"
#include "outputs.hpp"
#include "pipeline.hpp"
#include "summary.hpp"

namespace jitvision::app {
namespace {

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

struct Models {
  std::unique_ptr<Detector> detector;
  std::unique_ptr<DigitClassifier> reader;  // live digits only
};

// The detector's model: the --model file, or the --server model (exactly one of them).
LoadedModel load_detector_model(const DetectOptions& o) {
  if (o.model.empty() == o.server.empty()) {
    throw UsageError(o.model.empty() ? "detect needs --model FILE or --server URL --server-model NAME"
                                     : "--model and --server exclude each other: give one");
  }
  if (o.model.empty() != !o.server_model.empty()) {
    throw UsageError(o.server_model.empty() ? "--server needs --server-model NAME" : "--server-model needs --server");
  }
  if (o.server.empty()) return load_model(o.model, {o.trust_model});
  return remote::load_remote_model(o.server, o.server_model, {o.open_timeout_ms, o.server_timeout_ms, o.reconnect});
}

Models load_models(const DetectOptions& o, const torch::Device& device) {
  DetectorOptions dopt;
  dopt.img_size = o.img_size;
  LoadedModel loaded = load_detector_model(o);
  dopt.nms = NmsOptions{o.conf, o.iou, o.max_det, {}};
  dopt.nms.agnostic = o.agnostic_nms;
  dopt.form = o.form;
  dopt.precision = resolve_precision_flags(o.dtype, o.half, device);
  Models m;
  m.detector = std::make_unique<Detector>(std::move(loaded), device, dopt);  // reads the model's contract, once
  if (!o.classes.empty()) m.detector->set_classes(resolve_classes(o.classes, m.detector->contract().names));
  m.detector->set_host_resize(opencv_resize);
  if (!o.reader_model.empty()) {
    m.reader = std::make_unique<DigitClassifier>(load_model(o.reader_model, {o.trust_model}), device, dopt.precision);
  }
  const auto& contract = m.detector->contract();
  if (o.img_size > 0 && !contract.dynamic && o.img_size != m.detector->img_size()) {
    report_warning("model " + (o.model.empty() ? o.server_model : o.model) + " has a fixed input of " +
                   std::to_string(contract.input_h) + "x" + std::to_string(contract.input_w) + "; --img " +
                   std::to_string(o.img_size) + " is ignored");
  } else if (o.img_size > 0 && o.img_size % contract.stride != 0) {
    report_warning("--img " + std::to_string(o.img_size) + " is not a multiple of the model's stride " +
                   std::to_string(contract.stride) + "; rounded up to " + std::to_string(m.detector->img_size()));
  }
  return m;
}

// How many inference workers run side by side, and the intra-op threads of each. On the CPU, one forward
// spread over all cores stalls at every OpenMP barrier whenever decoding, letterboxing or encoding takes one of
// its cores; two workers with half the threads each keep the cores busy (docs/BENCHMARKS.md has the figures).
// On CUDA one worker feeds the GPU.
// With batches (batch > 1), one worker with every thread is the default instead: a batch is already several frames
// in the model at once, and a second worker would take the frames the first one left, halving the batches
// (docs/detect.md, "Several sources and batching", has the figures).
std::pair<int, int> resolve_workers(const DetectOptions& o, const torch::Device& device, int batch) {
  if (device.is_cuda()) {
    if (o.workers > 1) report_warning("--workers " + std::to_string(o.workers) + " is for the CPU; using 1 on CUDA");
    return {1, 0};
  }
  const int threads = std::max(1, at::get_num_threads());
  int workers = o.workers > 0 ? o.workers : (threads >= 2 && batch == 1 ? 2 : 1);
  if (workers > threads) {
    if (o.workers > 0) {
      report_warning("--workers " + std::to_string(o.workers) + " exceeds the " + std::to_string(threads) +
                     " CPU threads; using " + std::to_string(threads));
    }
    workers = threads;
  }
  return {workers, workers > 1 ? threads / workers : 0};
}

// The largest batch: --batch, or auto: one frame per source, at most kAutoBatch (a batch's forward is the latency
// of each of its frames), where the forward runs on a GPU (CUDA, or an inference server); 1 for a local CPU
// forward, where a batch measured slower per frame than two workers of one frame each (docs/detect.md, "Several
// sources and batching"). A model with a fixed input (an official export) is traced for one frame: batch 1.
constexpr int kAutoBatch = 8;
int resolve_batch(const DetectOptions& o, const Detector& detector, const torch::Device& device) {
  const int sources = static_cast<int>(std::max<std::size_t>(o.sources.size(), 1));
  if (!detector.contract().dynamic) {
    if (o.batch > 1)
      report_warning("--batch " + std::to_string(o.batch) + ": the model has a fixed input of one frame; using 1");
    return 1;
  }
  if (o.batch > 0) return std::min(o.batch, sources);
  return device.is_cuda() || !o.server.empty() ? std::min(kAutoBatch, sources) : 1;
}

// One summary entry per source, from what its capture thread and the output recorded.
std::vector<SourceSummary> per_source(const Pipeline& p, const std::vector<std::string>& names) {
  std::vector<SourceSummary> out;
  for (std::size_t i = 0; i < p.sources.size(); ++i) {
    const SourceRecord& rec = p.sources[i];
    SourceSummary s;
    s.name = names[i];
    s.read = std::max(rec.read, rec.stats.read);
    s.processed = rec.processed;
    s.dropped = rec.dropped + rec.stats.dropped;
    s.reconnects = rec.stats.reconnects;
    const double active_s = (rec.last_ms - rec.first_ms) / 1000.0;
    s.fps = rec.processed > 1 && active_s > 0 ? static_cast<double>(rec.processed - 1) / active_s : 0.0;
    s.end = rec.end;
    out.push_back(std::move(s));
  }
  return out;
}

CaptureJob capture_job(const DetectOptions& o, Detector& detector) {
  CaptureJob job;
  job.sources = o.sources;
  job.source_options.open_timeout_ms = o.open_timeout_ms;
  job.source_options.read_timeout_ms = o.read_timeout_ms;
  job.source_options.reconnect = o.reconnect;
  job.source_options.max_pixels = o.max_pixels;
  if (!o.quiet) job.source_options.notice = [](const std::string& line) { report_warning(line); };
  job.max_frames = o.max_frames;
  job.vid_stride = o.vid_stride;
  job.prepare = [&detector](const cv::Mat& m) {
    return detector.prepare(as_tensor(ImageView{m.data, m.rows, m.cols, m.channels(), m.step[0]}));
  };
  return job;
}

}  // namespace

DetectSummary run_detect_pipeline(const DetectOptions& o) {
  Stopwatch since_start;
  check_output_paths(o.sources, {o.model, o.reader_model}, {o.json, o.save_video, o.save_dir});
  check_no_overwrite({o.json, o.save_video, o.save_dir}, o.overwrite);
  if (o.show && !io::display_available()) {  // before the model loads: the window is what the user asked for
    throw OutputError("--show needs a display, but none is reachable (DISPLAY is unset or the X server refuses)");
  }
  if (o.threads > 0) at::set_num_threads(o.threads);
  const auto device = resolve_device_flag(o.device);
  Models models = load_models(o, device);
  Outputs outputs(o, models.detector->contract().names);
  const CaptureJob capture = capture_job(o, *models.detector);
  io::configure_capture_backends(capture.source_options);  // sets process environment: before any thread starts

  const int batch = resolve_batch(o, *models.detector, device);
  const auto [workers, intra_op] = resolve_workers(o, device, batch);
  const RunSetup setup{o.sources.size(),
                       device.is_cuda(),
                       precision_label(models.detector->dtype()),
                       models.detector->img_size(),
                       models.detector->contract().dynamic,
                       models.reader != nullptr,
                       workers,
                       intra_op > 0 ? intra_op : at::get_num_threads(),
                       batch};
  Pipeline p;
  StageTimings t;
  Progress progress;
  run_pipeline(p, capture, InferenceJob{models.detector.get(), models.reader.get(), intra_op, batch}, workers,
               t.capture, [&](Result& r) {
                 if (!r.fault.empty()) return outputs.write(r);  // a skipped frame: its JSON record only
                 Stopwatch sw;
                 progress.begin_frame(since_start.elapsed_ms());
                 t.preprocess.add(r.times.preprocess_ms);
                 t.inference.add(r.times.inference_ms);
                 t.postprocess.add(r.times.postprocess_ms);
                 if (models.reader) t.read.add(r.read_ms);
                 const bool keep_going = outputs.write(r);
                 progress.end_frame();
                 t.output.add(sw.elapsed_ms());
                 return keep_going;
               });
  try {
    outputs.close();
  } catch (...) {
    p.fail(std::current_exception(), "output", true);
  }
  auto summary = summarise(t, progress, since_start.elapsed_ms(), static_cast<int>(p.status.code()), setup);
  summary.skipped = p.skipped;
  summary.batch = batch;
  summary.per_source = per_source(p, o.sources);
  if (!o.quiet) print_summary(summary, t, setup, received_stop_signal());
  return summary;
}

}  // namespace jitvision::app
