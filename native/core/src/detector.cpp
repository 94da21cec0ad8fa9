#include "jitvision/core/detector.hpp"

#include <chrono>
#include <iostream>
#include <stdexcept>

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

void Detector::warm_up(std::int64_t batch, std::int64_t input_h, std::int64_t input_w) {
  if (!model_->remote()) {  // the server warms up its own model: no zero frames over the network
    const auto input = torch::zeros({batch, 3, input_h, input_w}, torch::TensorOptions(device_).dtype(dtype_));
    for (int i = 0; i < kWarmUpForwards; ++i) forward(input);
    synchronize(device_);
  }
  warmed_[{batch, input_h, input_w}] = true;
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
  std::unique_lock upload_lock(upload_mutex_, std::defer_lock);  // one CUDA upload at a time through pinned_
  if (device_.is_cuda()) upload_lock.lock();
  const auto t0 = Clock::now();
  p.input = device_.is_cuda() ? letterbox(upload(frame), p.geometry, dtype_)
                              : letterbox(frame, p.geometry, dtype_, host_resize_);
  synchronize(device_);
  p.preprocess_ms = ms_since(t0);
  return p;
}

Detections Detector::infer(const PreparedFrame& frame, StageTimes* times) {
  std::vector<StageTimes> batch_times;
  auto detections = infer_batch({&frame}, times ? &batch_times : nullptr);
  if (times) *times = batch_times.front();
  return std::move(detections.front());
}

std::vector<Detections> Detector::infer_batch(const std::vector<const PreparedFrame*>& frames,
                                              std::vector<StageTimes>* times) {
  if (frames.empty()) throw std::invalid_argument("infer_batch: an empty batch");
  const auto batch = static_cast<std::int64_t>(frames.size());
  const auto& g0 = frames.front()->geometry;
  for (const auto* f : frames) {
    if (f->geometry.out_h != g0.out_h || f->geometry.out_w != g0.out_w) {
      throw std::invalid_argument("infer_batch: frames of different input shapes in one batch");
    }
  }
  torch::InferenceMode guard;
  {
    // Held through the warm-up, so another thread waits for it instead of warming up the same shape again.
    std::lock_guard lock(warm_mutex_);
    if (!warmed_.count({batch, g0.out_h, g0.out_w})) warm_up(batch, g0.out_h, g0.out_w);
  }

  auto t0 = Clock::now();
  torch::Tensor input = frames.front()->input;
  if (batch > 1) {
    std::vector<torch::Tensor> inputs;
    for (const auto* f : frames) inputs.push_back(f->input);
    input = torch::cat(inputs, 0);
  }
  const auto rows = forward(input);
  synchronize(device_);
  const double inf = ms_since(t0);
  if (rows.size(0) != batch) {
    throw ModelError("model file " + path_ + " returned " + std::to_string(rows.size(0)) + " row sets for a batch of " +
                     std::to_string(batch) + " frames (a model exported for a fixed batch needs --batch 1)");
  }

  std::vector<Detections> out;
  if (times) times->clear();
  for (std::int64_t i = 0; i < batch; ++i) {
    t0 = Clock::now();
    auto det = non_max_suppression(rows[i], options_.nms);
    scale_boxes(det, frames[i]->geometry);
    out.push_back(to_detections(det));
    if (times) times->push_back(StageTimes{frames[i]->preprocess_ms, inf / static_cast<double>(batch), ms_since(t0)});
  }
  return out;
}

}  // namespace jitvision
