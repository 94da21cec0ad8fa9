#pragma once
// The subcommands. Each registers its options on the CLI and runs from a filled options struct; run_cli() owns the
// error-to-exit-code mapping (failure_of).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "jitvision/core/inference_form.hpp"
#include "jitvision/io/image_header.hpp"

namespace jitvision::app {

struct DetectOptions {
  std::string model;
  // --server URL --server-model NAME: the forward runs on a Triton Inference Server instead of --model
  // (native/remote); --server-timeout bounds each request, --open-timeout each connection, --reconnect the retries.
  std::string server;
  std::string server_model;
  int server_timeout_ms = 30000;
  std::vector<std::string> sources;
  std::string device = "auto";
  bool half = false;
  std::string dtype;  // --dtype fp32|bf16|fp16 (precision.hpp); "": the model file's own
  int img_size = 0;   // --img; 0: the model's own input size
  float conf = 0.25f;
  float iou = 0.45f;
  std::vector<std::string> classes;  // --classes: class indices or names, resolved against the model's names
  bool agnostic_nms = false;
  int max_det = 1000;
  bool show = false;
  bool show_mosaic = false;  // --show mosaic: every source tiled into one window
  std::string save_dir;
  std::string save_video;
  std::string json;
  long long max_frames = 0;  // per source; 0: all
  int reconnect = 5;
  int open_timeout_ms = 10000;
  int read_timeout_ms = 5000;
  int threads = 0;           // 0: LibTorch's default (all cores)
  int workers = 0;           // inference workers on the CPU; 0: auto (see --workers)
  int batch = 0;             // frames of different sources run as one batch, up to this many; 0: auto; 1: off
  bool quiet = false;        // no per-frame lines, no progress line, no summary
  long long vid_stride = 1;  // keep every Nth frame of videos and streams
  // The official detector's run folder (run_folder.hpp): used when --save-txt/--save-crop/--save-csv or
  // --project/--name ask for it; annotated images go there too unless --nosave.
  std::string project = "runs/detect";
  std::string name = "exp";
  bool run_folder_asked = false;  // --project or --name given
  bool exist_ok = false;
  bool save_txt = false;
  bool save_conf = false;
  bool save_crop = false;
  bool save_csv = false;
  bool nosave = false;
  int line_thickness = 0;  // 0: by the frame's size
  bool hide_labels = false;
  bool hide_conf = false;
  std::string reader_model;  // digit classifier reading each detection's crop (live digits); empty: none
  bool trust_model = false;  // --trust-model: skip the model firewall
  InferenceForm form;        // the detector's layout and freezing (bench sets it; detect keeps the default)
  std::int64_t max_pixels = io::kDefaultMaxPixels;  // --max-pixels: larger image files are skipped undecoded
  bool overwrite = false;  // --overwrite: replace an existing --json, --save-video file or --save-dir image
};

// --trust-model, the same flag on every command that loads a model: load it without the model firewall
// (docs/security.md).
void add_trust_model_flag(CLI::App* cmd, bool& trust_model);

// CLI::Range for a real number that must also be finite: CLI::Range itself lets NaN through (every comparison with
// NaN is false), and a NaN IoU threshold would turn NMS off. "nan" and "inf" fail parsing (exit 2, one line).
CLI::Validator finite_range(double min, double max);

// The options `detect` and live `digits` share (inference size, thresholds, outputs, live-source behaviour).
void add_stream_options(CLI::App* cmd, DetectOptions& options);
// --server, --server-model, --server-timeout (detect: a Triton Inference Server does the forward).
void add_server_options(CLI::App* cmd, DetectOptions& options);

struct DigitsOptions {
  std::string model;
  std::string device = "auto";
  bool json = false;
  int batch = 64;
  std::vector<std::string> inputs;
  std::string detector;  // live mode: the digit detector (default: the bundled one)
  DetectOptions live;    // live mode: --source and the stream options
  // The options image mode refuses (UsageError) rather than ignore.
  std::vector<const CLI::Option*> live_only;
};
CLI::App* add_digits_command(CLI::App& app, DigitsOptions& options);
int run_digits(const DigitsOptions& options);
CLI::App* add_detect_command(CLI::App& app, DetectOptions& options);
int run_detect(const DetectOptions& options);

// One source's part of a detect run (the per-source summary lines).
struct SourceSummary {
  std::string name;            // the --source argument
  std::int64_t read = 0;       // frames the source delivered
  std::int64_t processed = 0;  // frames that went through the model and were written
  std::int64_t dropped = 0;    // frames dropped by the latest-frame policy (live sources)
  std::int64_t reconnects = 0;
  double fps = 0;   // processed frames per second of this source's active time
  std::string end;  // "ended", "lost", "stopped" or "failed to open"
};

// What a detect run measured (for the summary and for `jitvision bench --video`).
struct DetectSummary {
  std::int64_t frames = 0;
  double wall_ms = 0;                                               // whole command, model loading included
  double first_result_ms = -1;                                      // command start to the first frame's result
  double steady_fps = 0;                                            // after the first result
  std::vector<std::pair<std::string, std::vector<double>>> stages;  // name -> per-frame ms
  int exit_code = 0;
  int workers = 1;             // inference workers side by side
  int threads_per_worker = 0;  // their intra-op threads
  std::int64_t skipped = 0;    // frames that could not be used (each reported by a warning and a JSON record)
  int batch = 1;               // the largest batch the inference stage may form (--batch)
  std::vector<SourceSummary> per_source;  // in --source order
};
DetectSummary run_detect_pipeline(const DetectOptions& options);

struct BenchOptions {
  std::string model;
  bool trust_model = false;
  std::string device = "auto";
  bool half = false;
  std::string dtype;  // --dtype fp32|bf16|fp16, as for detect; "": the model file's own
  int img_size = 0;   // --img; 0: the model's own input size
  std::string shape;  // BxCxHxW
  int threads = 0;
  int warmup = 5;
  int iters = 30;
  std::string video;
  std::string jit_executor = "profiling";
  std::string layout = "channels_last";  // InferenceForm, for the forward runs and the --video pipeline
  bool no_freeze = false;
  bool onednn_fusion = false;
  int workers = 0;       // --video pipeline; 0: auto
  int streams = 0;       // --streams N: N concurrent copies of --video, batched and not (bench_streams.hpp); 0: off
  int batch = 0;         // --batch for the batched --streams run; 0: auto
  std::string source;    // --streams: a live stream opened N times instead of --video
  long long frames = 0;  // --streams: frames per stream; 0: to the end (needed for --source)
  bool json = false;
};
CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);
int run_bench(const BenchOptions& options);

struct InfoOptions {
  std::string model;
  bool trust_model = false;
  bool json = false;
  bool graph = false;  // also the TorchScript IR of forward: its inlined graph and its code
};
CLI::App* add_info_command(CLI::App& app, InfoOptions& options);
int run_info(const InfoOptions& options);

}  // namespace jitvision::app
