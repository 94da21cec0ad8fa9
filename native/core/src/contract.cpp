#include "jitvision/core/contract.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

// The one ModelKind <-> string table.
constexpr std::array<std::pair<ModelKind, std::string_view>, 3> kKindNames{{
    {ModelKind::Detector, "detector"},
    {ModelKind::Classifier, "classifier"},
    {ModelKind::Unknown, "unknown"},
}};

// Detector metadata a sane export never has (the same rules and messages as python/jitvision/model_file.py).
constexpr std::int64_t kMaxInputSize = 8192;
constexpr std::int64_t kMaxStride = 256;

// A class-name key of the official {"0": "person", ...} mapping: 1 to 9 ASCII digits, else nullopt.
std::optional<int> class_index(const std::string& key) {
  const bool digits = !key.empty() && key.size() <= 9 &&
                      std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  return digits ? std::optional<int>(std::stoi(key)) : std::nullopt;
}

std::vector<std::string> names_from_json(const std::string& path, const nlohmann::json& names) {
  std::vector<std::string> out;
  if (names.is_array()) return names.get<std::vector<std::string>>();
  // Official config.txt: {"0": "person", ...} with string keys.
  std::map<int, std::string> by_index;
  for (const auto& [key, value] : names.items()) {
    const auto index = class_index(key);
    if (!index) throw ModelError("model file " + path + " has class name key '" + key + "', not a class index");
    by_index[*index] = value.get<std::string>();
  }
  for (const auto& [index, name] : by_index) {
    if (index != static_cast<int>(out.size())) {
      throw ModelError("model file " + path + " has class name keys that are not 0..n-1");
    }
    out.push_back(name);
  }
  return out;
}

LetterboxMode letterbox_mode(const std::string& path, const std::string& name) {
  if (name == "rect") return LetterboxMode::Rect;
  if (name == "square") return LetterboxMode::Square;
  throw ModelError("model file " + path + " has letterbox '" + name + "', not rect or square");
}

void check_detector(const std::string& path, const DetectorContract& c) {
  if (c.names.empty()) throw ModelError("model file " + path + " lists no class names");
  if (c.stride <= 0 || c.stride > kMaxStride || (c.stride & (c.stride - 1)) != 0) {
    throw ModelError("model file " + path + " has stride " + std::to_string(c.stride) +
                     ", not a power of two from 1 to " + std::to_string(kMaxStride));
  }
  for (const std::int64_t size : {c.img_size, c.input_h, c.input_w}) {
    if (size <= 0 || size > kMaxInputSize) {
      throw ModelError("model file " + path + " has input size " + std::to_string(size) + ", not from 1 to " +
                       std::to_string(kMaxInputSize));
    }
  }
}

DetectorContract ours_detector(const std::string& path, const nlohmann::json& meta) {
  DetectorContract c;
  c.origin = "jitvision";
  c.dynamic = meta.at("dynamic").get<bool>();
  c.letterbox = letterbox_mode(path, meta.at("letterbox").get<std::string>());
  c.stride = meta.at("stride").get<std::int64_t>();
  c.img_size = meta.at("img_size").get<std::int64_t>();
  c.names = names_from_json(path, meta.at("names"));
  c.input_h = c.input_w = c.img_size;
  if (meta.contains("mixed_precision")) c.fp32_head = meta.at("mixed_precision").at("fp32_head").get<std::string>();
  return c;
}

DetectorContract official_detector(const std::string& path, const nlohmann::json& cfg) {
  DetectorContract c;
  c.origin = "ultralytics";
  c.dynamic = false;
  c.letterbox = LetterboxMode::Square;
  const auto shape = cfg.at("shape").get<std::vector<std::int64_t>>();
  if (shape.size() != 4) {
    throw ModelError("model file " + path + " has config.txt shape " + cfg.at("shape").dump() + ", not [B, 3, H, W]");
  }
  c.input_h = shape[2];
  c.input_w = shape[3];
  c.img_size = std::max(c.input_h, c.input_w);
  c.stride = cfg.at("stride").get<std::int64_t>();
  c.names = names_from_json(path, cfg.at("names"));
  return c;
}

DetectorContract read_detector(const LoadedModel& model) {
  DetectorContract c;
  try {
    c = model.metadata.is_object() ? ours_detector(model.path, model.metadata)
                                   : official_detector(model.path, model.official_config);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("model file " + model.path + " has incomplete detector metadata: " + e.what());
  }
  check_detector(model.path, c);
  return c;
}

std::string number_text(float v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// (pixel * 255 / scale - mean) / std must be finite: a std or scale of 0 turns every probability into NaN.
void check_normalisation(const std::string& path, const ClassifierContract& c) {
  if (!(std::isfinite(c.scale) && c.scale > 0)) {
    throw ModelError("model file " + path + " has normalize scale " + number_text(c.scale) + ", not a positive number");
  }
  for (const float std_dev : c.std_dev) {
    if (!(std::isfinite(std_dev) && std_dev > 0)) {
      throw ModelError("model file " + path + " has normalize std " + number_text(std_dev) + ", not a positive number");
    }
  }
  for (const float mean : c.mean) {
    if (!std::isfinite(mean)) {
      throw ModelError("model file " + path + " has normalize mean " + number_text(mean) + ", not a finite number");
    }
  }
}

ClassifierContract read_classifier(const LoadedModel& model) {
  const auto& meta = model.metadata;
  ClassifierContract c;
  try {
    c.input_shape = meta.at("input").at("shape").get<std::vector<std::int64_t>>();
    const auto& norm = meta.at("normalize");
    c.scale = norm.at("scale").get<float>();
    c.mean = norm.at("mean").get<std::vector<float>>();
    c.std_dev = norm.at("std").get<std::vector<float>>();
    c.labels = meta.at("labels").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("model file " + model.path + " has incomplete digit metadata: " + e.what());
  }
  if (c.input_shape.size() != 4) {
    throw ModelError("model file " + model.path + " expects input " + meta.at("input").at("shape").dump() +
                     ", not [N, C, H, W]");
  }
  if (c.labels.empty()) throw ModelError("model file " + model.path + " lists no class labels");
  check_normalisation(model.path, c);
  return c;
}

}  // namespace

std::string_view to_string(ModelKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  throw std::logic_error("ModelKind without a name");
}

std::int64_t DetectorContract::resolve_img_size(std::int64_t requested) const {
  if (!dynamic) return std::max(input_h, input_w);
  return requested > 0 ? round_up_to_stride(requested, stride) : img_size;
}

ModelContract read_contract(const LoadedModel& model) {
  ModelContract c;
  c.path = model.path;
  if (model.metadata.is_object()) {
    c.task = model.metadata.value("task", "");
  } else if (model.official_config.is_object()) {
    c.task = "detect";
  }
  if (model.format == ModelFormat::Pt2 && model.metadata.is_object()) {
    try {
      c.package_dtype = model.metadata.value("dtype", "fp32");
    } catch (const nlohmann::json::exception& e) {
      throw ModelError("model file " + model.path +
                       " has a jitvision.json \"dtype\" that is not a string: " + e.what());
    }
  }
  if (c.task == "detect") {
    c.kind = ModelKind::Detector;
    c.detector = read_detector(model);
  } else if (c.task == "digits") {
    c.kind = ModelKind::Classifier;
    c.classifier = read_classifier(model);
  }
  return c;
}

const DetectorContract& ModelContract::as_detector() const {
  if (detector) return *detector;
  if (task.empty()) {
    throw ModelError("model file " + path +
                     " carries neither jitvision.json nor config.txt metadata, so its input contract and class "
                     "names are unknown: export it with `python -m jitvision yolov5 import`");
  }
  throw ModelError("model file " + path + " is a '" + task + "' model" +
                   (kind == ModelKind::Classifier ? " (a digit classifier: use `jitvision digits`)" : "") +
                   ", not a YOLOv5 detector");
}

const ClassifierContract& ModelContract::as_classifier() const {
  if (classifier) return *classifier;
  if (task.empty() || (detector && detector->origin == "ultralytics")) {
    throw ModelError("model file " + path +
                     " carries no jitvision.json metadata, so it is not a digit classifier exported by "
                     "`python -m jitvision mnist train`");
  }
  throw ModelError("model file " + path + " is a '" + task + "' model, not a digit classifier");
}

}  // namespace jitvision
