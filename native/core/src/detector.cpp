#include "jitvision/core/detector.hpp"

#include <chrono>

#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<std::string> names_from_json(const nlohmann::json& names) {
  std::vector<std::string> out;
  if (names.is_array()) return names.get<std::vector<std::string>>();
  // Official config.txt: {"0": "person", ...} with string keys.
  std::map<int, std::string> by_index;
  for (const auto& [key, value] : names.items()) by_index[std::stoi(key)] = value.get<std::string>();
  for (const auto& [index, name] : by_index) {
    if (index != static_cast<int>(out.size())) throw std::invalid_argument("class indices are not 0..n-1");
    out.push_back(name);
  }
  return out;
}

}  // namespace

DetectorContract read_detector_contract(const LoadedModel& model) {
  DetectorContract c;
  const auto& meta = model.metadata;
  try {
    if (meta.is_object()) {
      const std::string task = meta.value("task", "");
      if (task != "detect") {
        throw ModelError("model file " + model.path + " is a '" + task + "' model" +
                         (task == "digits" ? " (a digit classifier: use `jitvision digits`)" : "") +
                         ", not a YOLOv5 detector");
      }
      c.origin = "jitvision";
      c.dynamic = meta.at("dynamic").get<bool>();
      c.letterbox = meta.at("letterbox").get<std::string>() == "rect" ? LetterboxMode::Rect : LetterboxMode::Square;
      c.stride = meta.at("stride").get<std::int64_t>();
      c.img_size = meta.at("img_size").get<std::int64_t>();
      c.names = names_from_json(meta.at("names"));
      c.input_h = c.input_w = c.img_size;
    } else if (model.official_config.is_object()) {
      const auto& cfg = model.official_config;
      c.origin = "ultralytics";
      c.dynamic = false;
      c.letterbox = LetterboxMode::Square;
      const auto shape = cfg.at("shape").get<std::vector<std::int64_t>>();
      if (shape.size() != 4) throw ModelError("config.txt shape " + cfg.at("shape").dump() + " is not [B, 3, H, W]");
      c.input_h = shape[2];
      c.input_w = shape[3];
      c.img_size = std::max(c.input_h, c.input_w);
      c.stride = cfg.at("stride").get<std::int64_t>();
      c.names = names_from_json(cfg.at("names"));
    } else {
      throw ModelError("model file " + model.path +
                       " carries neither jitvision.json nor config.txt metadata, so its input contract and class "
                       "names are unknown: export it with `python -m jitvision yolov5 import`");
    }
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("model file " + model.path + " has incomplete detector metadata: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw ModelError("model file " + model.path + " has malformed class names: " + e.what());
  }
  if (c.names.empty()) throw ModelError("model file " + model.path + " lists no class names");
  if (c.stride <= 0) throw ModelError("model file " + model.path + " has an invalid stride");
  return c;
}

Detector::Detector(LoadedModel model, torch::Device device, DetectorOptions options)
    : module_(model.module),
      contract_(read_detector_contract(model)),
      options_(std::move(options)),
      device_(device),
      dtype_(options_.precision == Precision::Float16 ? torch::kHalf : torch::kFloat32),
      img_size_(options_.img_size > 0 ? round_up_to_stride(options_.img_size, contract_.stride) : contract_.img_size),
      path_(model.path) {
  if (!contract_.dynamic) img_size_ = std::max(contract_.input_h, contract_.input_w);
  if (dtype_ == torch::kHalf && !device_.is_cuda()) {
    throw DeviceError("--half needs a CUDA device (FP16 convolutions are not supported on the CPU)");
  }
  module_.to(device_, dtype_);
}

LetterboxPlan Detector::plan_for(std::int64_t frame_h, std::int64_t frame_w) const {
  return plan_letterbox(frame_h, frame_w, img_size_, contract_.stride, contract_.letterbox);
}

torch::Tensor Detector::forward(const torch::Tensor& input) {
  torch::InferenceMode guard;
  const auto out = module_.forward({input});
  torch::Tensor rows;
  if (out.isTensor()) {
    rows = out.toTensor();
  } else if (out.isTuple() || out.isList()) {
    // The official contract: a tuple whose first element holds the decoded rows.
    const auto items = out.isTuple() ? out.toTupleRef().elements().vec() : out.toList().vec();
    if (!items.empty() && items.front().isTensor()) rows = items.front().toTensor();
  }
  const auto expected = static_cast<std::int64_t>(contract_.names.size()) + 5;
  if (!rows.defined() || rows.dim() != 3 || rows.size(2) != expected) {
    throw ModelError("model file " + path_ + " returned " +
                     (rows.defined() ? "a tensor of shape " + c10::str(rows.sizes()) : std::string("no tensor")) +
                     "; a YOLOv5 detector with " + std::to_string(contract_.names.size()) +
                     " classes must return rows [B, N, " + std::to_string(expected) + "]");
  }
  return rows;
}

void Detector::warm_up(std::int64_t frame_h, std::int64_t frame_w, int iterations) {
  std::lock_guard lock(warm_mutex_);
  warm_up_locked(frame_h, frame_w, iterations);
}

void Detector::warm_up_locked(std::int64_t frame_h, std::int64_t frame_w, int iterations) {
  const auto plan = plan_for(frame_h, frame_w);
  const auto input = torch::zeros({1, 3, plan.out_h, plan.out_w}, torch::TensorOptions(device_).dtype(dtype_));
  for (int i = 0; i < iterations; ++i) forward(input);
  synchronize(device_);
  warmed_[{plan.out_h, plan.out_w}] = true;
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
  p.plan = plan_for(frame.size(0), frame.size(1));
  const auto t0 = Clock::now();
  p.input = device_.is_cuda() ? letterbox(upload(frame), p.plan, dtype_) : letterbox(frame, p.plan, dtype_, host_resize_);
  synchronize(device_);
  p.preprocess_ms = ms_since(t0);
  return p;
}

Detections Detector::infer(const PreparedFrame& frame, StageTimes* times) {
  torch::InferenceMode guard;
  {
    // Held through the warm-up, so another thread waits for it instead of warming up the same shape again.
    std::lock_guard lock(warm_mutex_);
    if (!warmed_.count({frame.plan.out_h, frame.plan.out_w})) warm_up_locked(frame.plan.src_h, frame.plan.src_w, kWarmUpForwards);
  }

  auto t0 = Clock::now();
  const auto rows = forward(frame.input);
  synchronize(device_);
  const double inf = ms_since(t0);

  t0 = Clock::now();
  auto det = non_max_suppression(rows[0], options_.nms);
  scale_boxes_to_frame(det, frame.plan);
  auto detections = to_detections(det);
  const double post = ms_since(t0);
  if (times) *times = StageTimes{frame.preprocess_ms, inf, post};
  return detections;
}

Detections Detector::detect(const torch::Tensor& frame, StageTimes* times) { return infer(prepare(frame), times); }

}  // namespace jitvision
