#pragma once
// Handwritten digit recognition: MNIST-style normalisation of arbitrary photos, and the classifier around a
// model exported by `python -m jitvision mnist train` (TorchScript) or `mnist export` (.pt2).
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "jitvision/core/image.hpp"
#include "jitvision/core/model.hpp"
#include "jitvision/core/precision.hpp"

namespace jitvision {

// Turns a photo of one digit (any size, grey or colour, dark-on-light or light-on-dark, off-centre) into the
// 28x28 form MNIST was made in: light ink on black, the ink's bounding box scaled to fit 20x20 keeping its aspect,
// then placed so the ink's centre of mass sits at the centre of the 28x28 field. Returns float32 [28, 28] in [0, 1].
// Throws InputError when the image is blank (no ink to find).
torch::Tensor normalize_digit(const torch::Tensor& image_hwc_u8);

// Same, for the pixel statistics of the image; exposed for tests.
struct InkStats {
  bool inverted = false;              // dark ink on light paper was turned into light ink on dark
  float background = 0;               // paper level (0..255, median of the image's 2-pixel outer ring) before inversion
  float noise_sigma = 0;              // robust estimate of the paper's noise (0..255, from the same ring)
  std::array<std::int64_t, 4> box{};  // ink bounding box: y0, x0, y1, x1 (exclusive), in input pixels
};
InkStats measure_ink(const torch::Tensor& image_hwc_u8);

struct DigitResult {
  int digit = -1;
  float prob = 0;
  std::vector<float> probs;
};

class DigitClassifier {
 public:
  // Takes the model's ClassifierContract (ModelError when it is not a classifier or its input is not 28x28) and
  // moves it to `device` in `precision` (precision.hpp; nullopt: the file's own; bf16 runs the whole model in bf16).
  DigitClassifier(LoadedModel model, torch::Device device, std::optional<Precision> precision = std::nullopt);

  // images: [N, 28, 28] float in [0, 1] as made by normalize_digit. Returns one result per image.
  std::vector<DigitResult> classify(const torch::Tensor& normalized) const;

 private:
  std::shared_ptr<Model> model_;
  torch::Device device_;
  torch::ScalarType dtype_ = torch::kFloat32;  // the model's input
  float scale_ = 255.0f;
  torch::Tensor mean_, std_;
  std::size_t num_labels_ = 0;
};

}  // namespace jitvision
