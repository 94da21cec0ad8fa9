#include "jitvision/core/detector.hpp"

#include <chrono>
#include <iostream>

#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/official_export.hpp"

namespace jitvision {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

Detector::Detector(LoadedModel model, torch::Device device, DetectorOptions options)
    : model_(model.model),
      contract_(read_contract(model).as_detector()),
      options_(std::move(options)),
      device_(device),
      dtype_(torch::kFloat32),
      img_size_(contract_.resolve_img_size(options_.img_size)),
      path_(model.path) {
  const auto plan = plan_precision(read_contract(model), model.format, options_.precision, device_);
  dtype_ = plan.dtype;
  if (stored_dtype(model) == torch::kHalf && !options_.precision) {
    // An official FP16 export: FP16 where it runs (CUDA), else FP32 rather than slow or missing CPU kernels.
    if (device_.is_cuda()) {
      dtype_ = torch::kHalf;
    } else {
      std::cerr << "jitvision: note: model file " << path_ << " holds FP16 weights; converted to FP32 for the CPU\n";
    }
  }
  auto form = options_.form;
  form.fp32_head = plan.fp32_head;
  model_->to(device_, dtype_, form);
  if (contract_.origin == "ultralytics") {
    contract_ = probe_official(*model_, contract_, device_, dtype_);
    img_size_ = contract_.resolve_img_size(options_.img_size);
  }
}

LetterboxGeometry Detector::geometry_for(std::int64_t frame_h, std::int64_t frame_w) const {
  return letterbox_geometry(frame_h, frame_w, img_size_, contract_.stride, contract_.letterbox);
}

torch::Tensor Detector::forward(const torch::Tensor& input) {
  torch::InferenceMode guard;
  // The decoded rows are the output, or the first element of a tuple (the official contract).
  const auto outputs = model_->forward(input);
  const torch::Tensor rows = outputs.empty() ? torch::Tensor() : outputs.front();
  const auto expected = static_cast<std::int64_t>(contract_.names.size()) + 5;
  if (!rows.defined() || rows.dim() != 3 || rows.size(2) != expected) {
    throw ModelError("model file " + path_ + " returned " +
                     (rows.defined() ? "a tensor of shape " + c10::str(rows.sizes()) : std::string("no tensor")) +
                     "; a YOLOv5 detector with " + std::to_string(contract_.names.size()) +
                     " classes must return rows [B, N, " + std::to_string(expected) + "]");
  }
  return rows;
}

void Detector::warm_up(std::int64_t input_h, std::int64_t input_w) {
  const auto input = torch::zeros({1, 3, input_h, input_w}, torch::TensorOptions(device_).dtype(dtype_));
  for (int i = 0; i < kWarmUpForwards; ++i) forward(input);
  synchronize(device_);
  warmed_[{input_h, input_w}] = true;
}

torch::Tensor Detector::upload(const torch::Tensor& frame) {
  if (!device_.is_cuda()) return frame;
  if (!pinned_.defined() || pinned_.sizes() != frame.sizes()) {
    pinned_ = torch::empty(frame.sizes(), torch::TensorOptions(torch::kUInt8).pinned_memory(true));
  }
  pinned_.copy_(frame);
  return pinned_.to(device_, /*non_blocking=*/true);
}

PreparedFrame Detector::prepare(const torch::Tensor& frame) {
  torch::InferenceMode guard;
  PreparedFrame p;
  p.geometry = geometry_for(frame.size(0), frame.size(1));
  const auto t0 = Clock::now();
  p.input = device_.is_cuda() ? letterbox(upload(frame), p.geometry, dtype_)
                              : letterbox(frame, p.geometry, dtype_, host_resize_);
  synchronize(device_);
  p.preprocess_ms = ms_since(t0);
  return p;
}

Detections Detector::infer(const PreparedFrame& frame, StageTimes* times) {
  torch::InferenceMode guard;
  {
    // Held through the warm-up, so another thread waits for it instead of warming up the same shape again.
    std::lock_guard lock(warm_mutex_);
    const auto& g = frame.geometry;
    if (!warmed_.count({g.out_h, g.out_w})) warm_up(g.out_h, g.out_w);
  }

  auto t0 = Clock::now();
  const auto rows = forward(frame.input);
  synchronize(device_);
  const double inf = ms_since(t0);

  t0 = Clock::now();
  auto det = non_max_suppression(rows[0], options_.nms);
  scale_boxes(det, frame.geometry);
  auto detections = to_detections(det);
  const double post = ms_since(t0);
  if (times) *times = StageTimes{frame.preprocess_ms, inf, post};
  return detections;
}

}  // namespace jitvision
