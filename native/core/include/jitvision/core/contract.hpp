#pragma once
// What a TorchScript file is and what it promises, read once from the metadata it carries (never guessed from output
// shapes): our `jitvision.json` ("task": "detect" or "digits") or the official YOLOv5 export's `config.txt`.
// Every command asks read_contract(); nobody decides the kind of a model again.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jitvision/core/letterbox.hpp"
#include "jitvision/core/model.hpp"

namespace jitvision {

// What a model does. The strings ("detector", "classifier", "unknown") are the same in the Python package.
enum class ModelKind { Detector, Classifier, Unknown };
std::string_view to_string(ModelKind kind);

// A YOLOv5 detector: ours (dynamic shapes, jitvision.json) or an official export (fixed input, config.txt).
struct DetectorContract {
  std::string origin;    // who exported it: "jitvision" or "ultralytics"
  bool dynamic = false;  // any multiple of the stride (else fixed input_h x input_w)
  LetterboxMode letterbox = LetterboxMode::Square;
  std::int64_t stride = 32;
  std::int64_t img_size = 640;                // default --img
  std::int64_t input_h = 640, input_w = 640;  // fixed models only
  std::vector<std::string> names;
  // jitvision.json "mixed_precision": {"fp32_head": NAME}: the submodule (the Detect head) that stays float32 when the
  // rest runs in bf16 (--dtype bf16, precision.hpp); "" when the file cannot run that way (official and older exports).
  std::string fp32_head;

  // The input size for a requested --img (0: the model's own img_size), rounded up to the stride; a fixed model
  // always gets its own size.
  std::int64_t resolve_img_size(std::int64_t requested) const;
};

// An image classifier exported by `python -m jitvision mnist train`: input [N, C, H, W] float, normalised as
// (pixel * 255 / scale - mean) / std_dev per channel, one logit per label.
struct ClassifierContract {
  std::vector<std::int64_t> input_shape;  // as exported, e.g. [1, 1, 28, 28]
  float scale = 255.0f;
  std::vector<float> mean, std_dev;  // one per channel
  std::vector<std::string> labels;
};

struct ModelContract {
  std::string path;
  ModelKind kind = ModelKind::Unknown;
  // The file's own word for its task: jitvision.json's "task" ("detect", "digits", ...), "detect" for an official
  // export, "" when the file carries no metadata at all.
  std::string task;
  // A .pt2 package's precision, fixed when it was compiled: jitvision.json "dtype" ("fp32" when absent); "" for
  // other formats.
  std::string package_dtype;
  std::optional<DetectorContract> detector;      // set exactly when kind == Detector
  std::optional<ClassifierContract> classifier;  // set exactly when kind == Classifier

  // The detector / classifier contract; ModelError saying what the file is instead when it is not one.
  const DetectorContract& as_detector() const;
  const ClassifierContract& as_classifier() const;
};

// Throws ModelError when the metadata names a kind but is incomplete or malformed; a file whose metadata names no
// kind we know (or that has none) is Unknown.
ModelContract read_contract(const LoadedModel& model);

}  // namespace jitvision
