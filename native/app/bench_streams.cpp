#include "bench_streams.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "jitvision/core/errors.hpp"
#include "jitvision/core/timing.hpp"
#include "json_text.hpp"

namespace jitvision::app {
namespace {

DetectOptions streams_detect_options(const BenchOptions& o, std::optional<Precision> precision,
                                     const InferenceForm& form, int batch) {
  DetectOptions d;
  d.model = o.model;
  d.trust_model = o.trust_model;
  d.sources.assign(static_cast<std::size_t>(o.streams), o.source.empty() ? o.video : o.source);
  d.max_frames = o.frames;
  d.device = o.device;
  if (precision) d.dtype = precision_name(*precision);
  d.img_size = o.img_size;
  d.threads = o.threads;
  d.workers = o.workers;
  d.form = form;
  d.batch = batch;
  d.quiet = true;  // no outputs either: the run measures capture, batching and inference
  return d;
}

// min/mean/max of the streams' processed rates (one per stream: never empty) and the largest deviation from the
// mean as a fraction of it.
nlohmann::json rate_stats(const std::vector<double>& rates) {
  if (rates.empty()) throw Error(ExitCode::Internal, "bench --streams: the pipeline reported no per-source summary");
  double sum = 0;
  for (double r : rates) sum += r;
  const double mean = sum / static_cast<double>(rates.size());
  const auto [lo, hi] = std::minmax_element(rates.begin(), rates.end());
  const double spread = mean > 0 ? std::max(mean - *lo, *hi - mean) / mean : 0.0;
  return {{"min", *lo}, {"mean", mean}, {"max", *hi}, {"spread", spread}};
}

// Per-frame median and p90 of each pipeline stage that ran (inference: a batch's forward over its frames).
nlohmann::json stage_medians(const DetectSummary& s) {
  nlohmann::json stages = nlohmann::json::object();
  for (const auto& [name, samples] : s.stages) {
    if (samples.empty()) continue;
    TimingStats t;
    for (double v : samples) t.add(v);
    stages[name] = {{"median_ms", t.median()}, {"p90_ms", t.percentile(90)}};
  }
  return stages;
}

nlohmann::json one_run(const DetectOptions& d) {
  const auto s = run_detect_pipeline(d);
  if (s.exit_code != 0) {
    throw Error(static_cast<ExitCode>(s.exit_code), "bench --streams: the pipeline at --batch " +
                                                        std::to_string(d.batch) + " ended with exit code " +
                                                        std::to_string(s.exit_code));
  }
  nlohmann::json per_stream = nlohmann::json::array();
  std::vector<double> rates;
  for (const auto& src : s.per_source) {
    per_stream.push_back({{"read", src.read},
                          {"processed", src.processed},
                          {"dropped", src.dropped},
                          {"fps", src.fps},
                          {"end", src.end}});
    rates.push_back(src.fps);
  }
  return {{"batch_asked", d.batch},
          {"batch", s.batch},
          {"frames", s.frames},
          {"wall_s", s.wall_ms / 1000.0},
          {"fps", s.steady_fps},
          {"workers", s.workers},
          {"threads_per_worker", s.threads_per_worker},
          {"stages", stage_medians(s)},
          {"per_stream", per_stream},
          {"per_stream_fps", rate_stats(rates)}};
}

std::string figure(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << v.get<double>();
  return s.str();
}

void print_run(std::ostream& os, const char* label, const nlohmann::json& run) {
  const auto& r = run["per_stream_fps"];
  os << "  " << label << " (largest batch " << run["batch"].get<int>() << "): " << run["frames"].get<std::int64_t>()
     << " frames, " << figure(run["fps"]) << " FPS in total; per stream min/mean/max " << figure(r["min"]) << "/"
     << figure(r["mean"]) << "/" << figure(r["max"]) << " FPS";
  if (run["stages"].contains("inference"))
    os << ", inference " << figure(run["stages"]["inference"]["median_ms"]) << " ms per frame";
  os << " (largest deviation " << std::setprecision(0) << std::fixed << 100 * r["spread"].get<double>()
     << "% of the mean)\n";
}

}  // namespace

void check_streams_options(const BenchOptions& o) {
  if (o.streams == 0) return;
  if (o.video.empty() && o.source.empty())
    throw UsageError("--streams needs --video FILE or --source URL: what each stream reads");
  if (!o.source.empty() && o.frames == 0)
    throw UsageError("--source is live and never ends: give --frames N, the frames each stream is measured over");
  if (o.batch == 1) {
    throw UsageError("--batch 1 is the baseline every --streams run measures: pass --batch 2 or more, or 0 (auto)");
  }
}

nlohmann::json bench_streams(const BenchOptions& o, std::optional<Precision> precision, const InferenceForm& form) {
  // Batched first: whatever a second run in the same process gains from warm caches goes to the baseline.
  const auto batched = one_run(streams_detect_options(o, precision, form, o.batch));
  const auto unbatched = one_run(streams_detect_options(o, precision, form, 1));
  const double base = unbatched["fps"].get<double>();
  return {{"source", escape_invalid_utf8(o.source.empty() ? o.video : o.source)},
          {"live", !o.source.empty()},
          {"streams", o.streams},
          {"batched", batched},
          {"unbatched", unbatched},
          {"speedup", base > 0 ? nlohmann::json(batched["fps"].get<double>() / base) : nlohmann::json(nullptr)}};
}

void print_streams_text(std::ostream& os, const nlohmann::json& streams) {
  os << streams["streams"].get<int>() << (streams["live"].get<bool>() ? " connections to " : " concurrent copies of ")
     << streams["source"].get<std::string>() << " through the detect pipeline:\n";
  print_run(os, "batched", streams["batched"]);
  print_run(os, "--batch 1", streams["unbatched"]);
  os << "  total throughput batched / --batch 1: " << figure(streams["speedup"]) << " x\n";
}

}  // namespace jitvision::app
