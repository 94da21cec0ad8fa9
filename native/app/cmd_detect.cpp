// `jitvision detect`'s command line: YOLOv5 on images, video files, cameras and streams. The run itself is
// run_detect_pipeline (detect_run.cpp); the stages are in pipeline.cpp, the outputs in outputs.cpp.
#include "commands.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "detect_flags.hpp"
#include "failure.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision::app {

namespace {

// The official detector's output flags (docs/detect.md, "Run folder"), its --imgsz and its --vid-stride.
void add_official_options(CLI::App* cmd, DetectOptions& o) {
  cmd->add_option_function<std::vector<int>>(
         "--imgsz,--img-size",
         [&o](const std::vector<int>& sides) {
           o.img_size = *std::max_element(sides.begin(), sides.end());
           if (sides.size() == 2 && sides[0] != sides[1]) {
             report_warning("--imgsz " + std::to_string(sides[0]) + " " + std::to_string(sides[1]) +
                            ": the letterbox fits the longest side and keeps the frame's aspect ratio; using --img " +
                            std::to_string(o.img_size));
           }
         },
         "As --img; with two values (H W, the official spelling) the larger is used")
      ->expected(1, 2)
      ->check(CLI::Range(32, 8192));
  cmd->add_option("--vid-stride", o.vid_stride, "Keep every Nth frame of videos and streams")
      ->check(CLI::Range(1LL, 100000LL))
      ->capture_default_str();
  cmd->add_flag("--agnostic-nms", o.agnostic_nms, "Class-agnostic NMS: boxes of different classes suppress each other");
  cmd->add_flag("--save-txt", o.save_txt, "Write YOLO label files to RUN/labels (cls cx cy w h, normalised)");
  cmd->add_flag("--save-conf", o.save_conf, "With --save-txt: add each box's confidence to its label line");
  cmd->add_flag("--save-crop", o.save_crop, "Save each box cut from the frame to RUN/crops/<class>/");
  cmd->add_flag("--save-csv", o.save_csv, "Write every detection to RUN/predictions.csv");
  cmd->add_flag("--nosave", o.nosave, "Do not save annotated images into the run folder");
  const auto asked = [&o](const std::string&) { o.run_folder_asked = true; };
  cmd->add_option("--project", o.project, "Run folders go under PROJECT (default runs/detect)")
      ->each(asked)
      ->capture_default_str();
  cmd->add_option("--name", o.name, "Run folder name: PROJECT/NAME, then NAME2, NAME3, ... (default exp)")
      ->each(asked)
      ->capture_default_str();
  cmd->add_flag("--exist-ok", o.exist_ok, "Write into PROJECT/NAME even if it exists, instead of a new numbered one");
  cmd->add_option("--line-thickness", o.line_thickness, "Box line width in pixels (default: by the frame's size)")
      ->check(CLI::Range(1, 100));
  cmd->add_flag("--hide-labels", o.hide_labels, "Draw boxes without labels");
  cmd->add_flag("--hide-conf", o.hide_conf, "Draw labels without confidences");
}

// --sources FILE (after --source) and --batch N.
void add_sources_options(CLI::App* cmd, DetectOptions& o) {
  // Defined after --source, so its callback runs after --source's values are stored: the file's sources come last.
  cmd->add_option_function<std::string>(
      "--sources",
      [&o](const std::string& file) {
        try {
          append_sources_file(file, o.sources);
        } catch (const UsageError& e) {
          throw CLI::ValidationError(e.what());
        }
      },
      "A file of sources, one per line (# comments and blank lines ignored), added after any --source");
  cmd->add_option("--batch", o.batch,
                  "Frames of different sources in one forward, at most N (0: auto: one per source up to 8 on CUDA or "
                  "--server, 1 on the CPU; 1: off)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
}

}  // namespace

CLI::App* add_detect_command(CLI::App& app, DetectOptions& o) {
  auto* cmd = app.add_subcommand(
      "detect", "Detect objects with a YOLOv5 TorchScript model in images, videos, cameras and streams");
  cmd->add_option("--model,--weights", o.model,
                  "YOLOv5 TorchScript file: ours (python -m jitvision yolov5 import) or an official export");
  add_server_options(cmd, o);
  cmd->add_option(
      "--source", o.sources,
      "Image, directory, glob, video file, camera index (0), http(s)/rtsp URL or GStreamer pipeline; repeatable: all "
      "sources are read at once");
  add_sources_options(cmd, o);
  cmd->add_option("--device", o.device, "auto (CUDA if available), cpu, cuda, cuda:N or N (CUDA device N)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return is_device_flag(text) ? "" : "--device " + text + ": expected auto, cpu, cuda, cuda:N or N";
          },
          "DEVICE"))
      ->capture_default_str();
  cmd->add_option("--classes", o.classes, "Keep only these classes: indices or names, e.g. 0,2 or person car")
      ->delimiter(',');
  cmd->add_option("--json", o.json, "Write one JSON line per frame to FILE, or - for standard output");
  add_stream_options(cmd, o);
  add_official_options(cmd, o);
  return cmd;
}

CLI::Validator finite_range(double min, double max) {
  std::ostringstream range;
  range << "[" << min << " - " << max << "]";
  return CLI::Validator(
      [min, max, range = range.str()](std::string& text) -> std::string {
        double value = 0.0;
        const bool number = CLI::detail::lexical_cast(text, value);
        if (number && std::isfinite(value) && value >= min && value <= max) return {};
        return "Value " + text + " not a finite number in range " + range;
      },
      "FLOAT in " + range.str());
}

void add_server_options(CLI::App* cmd, DetectOptions& o) {
  cmd->add_option(
      "--server", o.server,
      "Triton Inference Server (http://host:port) doing the forward instead of --model (docs/scale-out.md)");
  cmd->add_option("--server-model", o.server_model, "The model's name on --server (python -m jitvision triton export)");
  cmd->add_option("--server-timeout", o.server_timeout_ms, "Milliseconds a request to --server may take")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
}

void add_trust_model_flag(CLI::App* cmd, bool& trust_model) {
  cmd->add_flag("--trust-model", trust_model,
                "Load the model without the model firewall check: its code may do anything (as "
                "JITVISION_TRUST_MODEL=1; docs/security.md)");
}

void add_stream_options(CLI::App* cmd, DetectOptions& o) {
  add_trust_model_flag(cmd, o.trust_model);
  cmd->add_flag("--half", o.half, "FP16 inference (CUDA only; ignored with a warning on the CPU); --dtype fp16");
  cmd->add_option("--dtype", o.dtype,
                  "fp32, bf16 (body in bfloat16, Detect head in float32; the CPU needs AVX512-BF16 or AMX) or fp16 "
                  "(CUDA). Default: the model file's own (a .pt2 package's, else fp32)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  cmd->add_option("--img", o.img_size,
                  "Inference size in pixels (longest side; rounded up to the stride). Default: the model's")
      ->check(CLI::Range(32, 8192));
  cmd->add_option("--conf,--conf-thres", o.conf, "Confidence threshold")
      ->check(finite_range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--iou,--iou-thres", o.iou, "NMS IoU threshold")
      ->check(finite_range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--max-det", o.max_det, "Maximum detections per frame")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--show,--view-img",
         [&o](const std::string& how) {
           if (!how.empty() && how != "mosaic") throw CLI::ValidationError("--show", "takes no value or 'mosaic'");
           o.show = true;
           o.show_mosaic = how == "mosaic";
         },
         "Show the detections in a window per source, or all sources tiled in one with 'mosaic' (needs a display; q "
         "or Esc quits)")
      ->expected(0, 1);
  cmd->add_option(
      "--save-dir", o.save_dir,
      "Save annotated images here (video frames as <name>_<frame>.jpg; several sources: a sub-folder each)");
  cmd->add_option("--save-video", o.save_video,
                  "Write the annotated frames into a video file (.mp4, .avi, .mkv), or one per source into a "
                  "directory or a pattern such as out/{name}.mp4");
  cmd->add_option("--max-frames", o.max_frames, "Stop each source after N frames (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--reconnect", o.reconnect, "Reopen attempts when a live source drops, with back-off")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  cmd->add_option("--open-timeout", o.open_timeout_ms, "Milliseconds to wait for a network stream to open")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  cmd->add_option("--read-timeout", o.read_timeout_ms,
                  "Milliseconds without a frame before a live source counts as dropped")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads for inference (0: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--workers", o.workers,
                  "Frames in the model at once on the CPU, each with threads/N threads (0: auto, 2 when there are 2 or "
                  "more threads; 1 gives the lowest latency per frame)")
      ->check(CLI::Range(0, 64));
  cmd->add_option("--max-pixels", o.max_pixels,
                  "Skip image files larger than this many pixels without decoding them (decompression bombs)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40))
      ->capture_default_str();
  cmd->add_flag("--overwrite", o.overwrite,
                "Replace an existing, non-empty --json or --save-video file, and images already in --save-dir");
  cmd->add_flag("--quiet", o.quiet, "Print no per-frame lines, no progress line, no summary, no source drop lines");
}

int run_detect(const DetectOptions& o) {
  if (o.sources.empty()) throw UsageError("detect needs --source SOURCE or --sources FILE");
  return run_detect_pipeline(o).exit_code;
}

}  // namespace jitvision::app
