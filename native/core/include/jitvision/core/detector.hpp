#pragma once
// A YOLOv5 detector around a TorchScript file: ours (dynamic shapes, jitvision.json) or an official export
// (fixed 640x640, config.txt). The contract is read from the file's metadata, never guessed from output shapes.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <torch/types.h>

#include "jitvision/core/detection.hpp"
#include "jitvision/core/letterbox.hpp"
#include "jitvision/core/model.hpp"
#include "jitvision/core/postprocess.hpp"

namespace jitvision {

enum class Precision { Float32, Float16 };

struct DetectorContract {
  std::string origin;          // "jitvision" or "ultralytics"
  bool dynamic = false;        // any multiple of the stride (else fixed input_h x input_w)
  LetterboxMode letterbox = LetterboxMode::Square;
  std::int64_t stride = 32;
  std::int64_t img_size = 640;  // default --img
  std::int64_t input_h = 640, input_w = 640;  // fixed models only
  std::vector<std::string> names;
};

// Throws ModelError naming what the file is when it is not a detector (e.g. a digit classifier).
DetectorContract read_detector_contract(const LoadedModel& model);

struct DetectorOptions {
  std::int64_t img_size = 0;  // 0: the model's own; rounded up to the stride
  Precision precision = Precision::Float32;
  NmsOptions nms;
};

struct StageTimes {
  double preprocess_ms = 0, inference_ms = 0, postprocess_ms = 0;
};

// A frame letterboxed into network input, ready for Detector::infer (made by Detector::prepare).
struct PreparedFrame {
  torch::Tensor input;  // [1, 3, H, W] on the detector's device and dtype
  LetterboxPlan plan;
  double preprocess_ms = 0;
};

class Detector {
 public:
  Detector(LoadedModel model, torch::Device device, DetectorOptions options);

  // frame: HxWx3 uint8 BGR on the CPU. Times are measured with the GPU synchronised.
  Detections detect(const torch::Tensor& frame_hwc_bgr, StageTimes* times = nullptr);

  // detect() in two halves, so a pipeline can letterbox the next frame while the current one is in the model.
  // prepare() may run on another thread than infer(); infer() may run on several threads at once (the warm-up of
  // a new input shape happens once, the other threads waiting for it).
  PreparedFrame prepare(const torch::Tensor& frame_hwc_bgr);
  Detections infer(const PreparedFrame& frame, StageTimes* times = nullptr);

  // Runs `iterations` forwards at the input shape a frame of this size gets, and checks the output's shape.
  // Called by detect() for every new frame size; call it ahead to keep start-up out of the first result.
  // Two forwards: the profiling executor profiles on the first call and optimises on the second.
  static constexpr int kWarmUpForwards = 2;
  void warm_up(std::int64_t frame_h, std::int64_t frame_w, int iterations = kWarmUpForwards);

  // Forward pass only, on a ready input [B, 3, H, W] (for benchmarks); returns the decoded rows.
  torch::Tensor forward(const torch::Tensor& input);

  const DetectorContract& contract() const { return contract_; }
  std::int64_t img_size() const { return img_size_; }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }
  LetterboxPlan plan_for(std::int64_t frame_h, std::int64_t frame_w) const;

  // Resize used for frames on the CPU (default: the core's tensor implementation).
  void set_host_resize(ResizeFn resize) { host_resize_ = std::move(resize); }

 private:
  torch::Tensor upload(const torch::Tensor& frame);
  void warm_up_locked(std::int64_t frame_h, std::int64_t frame_w, int iterations);  // warm_mutex_ held

  torch::jit::Module module_;
  DetectorContract contract_;
  DetectorOptions options_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::int64_t img_size_;
  ResizeFn host_resize_ = resize_linear_u8;
  torch::Tensor pinned_;  // reused host staging buffer for CUDA uploads
  std::map<std::pair<std::int64_t, std::int64_t>, bool> warmed_;  // input shapes already warmed up
  std::mutex warm_mutex_;  // guards warmed_ and serialises warm-ups
  std::string path_;
};

}  // namespace jitvision
