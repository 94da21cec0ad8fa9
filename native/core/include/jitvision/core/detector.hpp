#pragma once
// A YOLOv5 detector around a model file (TorchScript or .pt2, through the Model interface): ours (dynamic shapes,
// jitvision.json) or an official export (fixed 640x640, config.txt), driven by the DetectorContract that
// read_contract() finds in the file's metadata.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <torch/types.h>

#include "jitvision/core/contract.hpp"
#include "jitvision/core/detection.hpp"
#include "jitvision/core/inference_form.hpp"
#include "jitvision/core/letterbox.hpp"
#include "jitvision/core/model.hpp"
#include "jitvision/core/postprocess.hpp"
#include "jitvision/core/precision.hpp"

namespace jitvision {

struct DetectorOptions {
  std::int64_t img_size = 0;  // 0: the model's own; rounded up to the stride
  // --dtype (precision.hpp: bf16 runs the body in bf16 and the Detect head in float32); nullopt: the file's own
  // (a .pt2 package's, else float32).
  std::optional<Precision> precision;
  NmsOptions nms;
  InferenceForm form;  // layout and freezing (inference_form.hpp)
};

struct StageTimes {
  double preprocess_ms = 0, inference_ms = 0, postprocess_ms = 0;
};

// A frame letterboxed into network input, ready for Detector::infer (made by Detector::prepare).
struct PreparedFrame {
  torch::Tensor input;  // [1, 3, H, W] on the detector's device and dtype
  LetterboxGeometry geometry;
  double preprocess_ms = 0;
};

class Detector {
 public:
  // Throws ModelError (saying what the file is) when the model is not a detector.
  Detector(LoadedModel model, torch::Device device, DetectorOptions options);

  // Detection in two halves, so a pipeline can letterbox the next frame while the current one is in the model:
  // infer(prepare(frame)). frame: HxWx3 uint8 BGR on the CPU; times are measured with the GPU synchronised.
  // prepare() may run on another thread than infer(), and on several at once; infer() may too (the warm-up of
  // a new input shape happens once, the other threads waiting for it).
  PreparedFrame prepare(const torch::Tensor& frame_hwc_bgr);
  Detections infer(const PreparedFrame& frame, StageTimes* times = nullptr);
  // Several prepared frames of the same input shape in one forward (a batch); NMS and the mapping back to each
  // frame's geometry are per frame, so each result equals infer() of that frame. `times` gets one entry per frame:
  // its own preprocess and postprocess, and its share (1/B) of the batch's forward. Throws std::invalid_argument for
  // an empty batch or mixed shapes, ModelError when the model does not return one row set per frame (a model
  // exported for a fixed batch).
  std::vector<Detections> infer_batch(const std::vector<const PreparedFrame*>& frames,
                                      std::vector<StageTimes>* times = nullptr);

  const DetectorContract& contract() const { return contract_; }
  std::int64_t img_size() const { return img_size_; }
  // The dtype of the model's input (under --dtype bf16 the Detect head still runs in float32).
  torch::ScalarType dtype() const { return dtype_; }

  // Keeps only these classes (NmsOptions::classes); call before the first infer().
  void set_classes(std::vector<int> classes) { options_.nms.classes = std::move(classes); }

  // Resize used for frames on the CPU (default: the core's tensor implementation).
  void set_host_resize(ResizeFn resize) { host_resize_ = std::move(resize); }

 private:
  // Forward pass only, on a ready input [B, 3, H, W]; returns the decoded rows after checking their shape.
  torch::Tensor forward(const torch::Tensor& input);
  LetterboxGeometry geometry_for(std::int64_t frame_h, std::int64_t frame_w) const;
  torch::Tensor upload(const torch::Tensor& frame);
  // Runs kWarmUpForwards forwards at `batch` x `input_h` x `input_w` and checks the output's shape; infer_batch()
  // calls it (with warm_mutex_ held) for every new input shape, batch size included. Two forwards: the profiling
  // executor profiles on the first call and optimises on the second, so start-up stays out of the steady state.
  static constexpr int kWarmUpForwards = 2;
  void warm_up(std::int64_t batch, std::int64_t input_h, std::int64_t input_w);

  std::shared_ptr<Model> model_;
  DetectorContract contract_;
  DetectorOptions options_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::int64_t img_size_;
  ResizeFn host_resize_ = resize_linear_u8;
  torch::Tensor pinned_;     // reused host staging buffer for CUDA uploads
  std::mutex upload_mutex_;  // guards pinned_: prepare() runs on every source's capture thread
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, bool> warmed_;  // (B, H, W) already warmed up
  std::mutex warm_mutex_;  // guards warmed_ and serialises warm-ups
  std::string path_;
};

}  // namespace jitvision
