#include "jitvision/core/digits.hpp"

#include <algorithm>
#include <cmath>

#include "jitvision/core/contract.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

constexpr std::int64_t kField = 28;  // MNIST image side
constexpr std::int64_t kBox = 20;    // side of the box the ink is fitted into
// Where MNIST puts the ink's centre of mass, in pixel-index coordinates (the centre of the 28x28 field).
constexpr double kCentre = 13.5;
constexpr float kMinContrast = 16.0f;  // grey levels between darkest and brightest pixel below which it is blank

torch::Tensor to_grey(const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8, "expected an HxWxC uint8 image");
  const auto f = image.to(torch::kFloat32);
  const auto channels = image.size(2);
  if (channels == 1) return f.select(2, 0);
  if (channels == 3 || channels == 4) {  // BGR(A); ITU-R BT.601 luma, as OpenCV's grey conversion
    return f.select(2, 0) * 0.114f + f.select(2, 1) * 0.587f + f.select(2, 2) * 0.299f;
  }
  throw InputError("unsupported image with " + std::to_string(channels) + " channels");
}

std::pair<std::int64_t, std::int64_t> extent(const torch::Tensor& any_along) {
  const auto idx = torch::nonzero(any_along).flatten();
  if (idx.numel() == 0) throw InputError("no digit found: nothing stands out from the background noise");
  return {idx.min().item<std::int64_t>(), idx.max().item<std::int64_t>() + 1};
}

// The outer two pixels of each side (one for images under 8 pixels), flattened.
torch::Tensor border_ring(const torch::Tensor& grey) {
  const std::int64_t h = grey.size(0), w = grey.size(1);
  const std::int64_t r = std::min(h, w) >= 8 ? 2 : 1;
  if (h <= 2 * r || w <= 2 * r) return grey.flatten();
  return torch::cat({grey.slice(0, 0, r).flatten(), grey.slice(0, h - r, h).flatten(),
                     grey.slice(0, r, h - r).slice(1, 0, r).flatten(),
                     grey.slice(0, r, h - r).slice(1, w - r, w).flatten()});
}

struct Ink {
  InkStats stats;
  torch::Tensor level;  // [H, W] ink intensity above the background, 0..255 scale
  float ink_high = 0;   // typical intensity of solid ink
};

Ink find_ink(const torch::Tensor& image) {
  const auto grey = to_grey(image);
  // The frame's outer ring is paper: a tight crop (a detector's box) can be mostly ink, so the image median is not.
  const auto ring = border_ring(grey);
  const float background = ring.median().item<float>();
  const float lo = grey.min().item<float>();
  const float hi = grey.max().item<float>();
  if (hi - lo < kMinContrast) throw InputError("no digit found: the image is blank (no contrast)");

  Ink ink;
  // Ink is the extreme farther from the paper.
  ink.stats.inverted = (background - lo) > (hi - background);
  ink.stats.background = background;
  ink.stats.noise_sigma = 1.4826f * (ring - background).abs().median().item<float>();
  ink.level = (ink.stats.inverted ? background - grey : grey - background).clamp_min(0.0f);

  // Find the digit's region on a blurred copy (isolated noise pixels vanish), then its exact extent on the
  // unblurred one, so a clean MNIST digit keeps its exact bounding box.
  const float sigma = ink.stats.noise_sigma;
  const auto blurred = at::avg_pool2d(ink.level.unsqueeze(0).unsqueeze(0), {3, 3}, {1, 1}, {1, 1},
                                      /*ceil_mode=*/false, /*count_include_pad=*/false)
                           .squeeze(0)
                           .squeeze(0);
  const float peak = blurred.max().item<float>();
  if (peak < std::max(kMinContrast / 2, 3.0f * sigma / 3.0f)) {
    throw InputError("no digit found: nothing stands out from the background noise");
  }
  const auto region = blurred > std::max(0.25f * peak, 5.0f * sigma / 3.0f);
  auto [ry0, ry1] = extent(region.any(1));
  auto [rx0, rx1] = extent(region.any(0));
  const std::int64_t h = ink.level.size(0), w = ink.level.size(1), margin = 2;
  ry0 = std::max<std::int64_t>(0, ry0 - margin);
  rx0 = std::max<std::int64_t>(0, rx0 - margin);
  ry1 = std::min(h, ry1 + margin);
  rx1 = std::min(w, rx1 + margin);

  const auto window = ink.level.slice(0, ry0, ry1).slice(1, rx0, rx1);
  const auto fine = window > std::max(4.0f * sigma, 0.02f * peak);
  const auto [fy0, fy1] = extent(fine.any(1));
  const auto [fx0, fx1] = extent(fine.any(0));
  ink.stats.box = {{ry0 + fy0, rx0 + fx0, ry0 + fy1, rx0 + fx1}};
  ink.ink_high = torch::quantile(window.masked_select(fine), 0.95).item<float>();
  return ink;
}

}  // namespace

InkStats measure_ink(const torch::Tensor& image_hwc_u8) { return find_ink(image_hwc_u8).stats; }

torch::Tensor normalize_digit(const torch::Tensor& image_hwc_u8) {
  const Ink ink = find_ink(image_hwc_u8);
  const auto [y0, x0, y1, x1] = ink.stats.box;
  // Map background noise to black and solid ink to white, as in MNIST.
  const float floor = 2.0f * ink.stats.noise_sigma;
  const float range = std::max(ink.ink_high - floor, 1.0f);
  auto digit = ((ink.level.slice(0, y0, y1).slice(1, x0, x1) - floor) / range).clamp(0.0f, 1.0f);

  const std::int64_t h = y1 - y0, w = x1 - x0;
  const double scale = static_cast<double>(kBox) / static_cast<double>(std::max(h, w));
  const auto nh = std::max<std::int64_t>(1, std::llround(h * scale));
  const auto nw = std::max<std::int64_t>(1, std::llround(w * scale));
  if (nh != h || nw != w) {
    // Shrinking averages (antialiased, like an area resize); enlarging interpolates bilinearly.
    const auto batched = digit.unsqueeze(0).unsqueeze(0);
    const std::vector<std::int64_t> size{nh, nw};
    digit = (scale < 1.0 ? at::_upsample_bilinear2d_aa(batched, size, /*align_corners=*/false)
                         : at::upsample_bilinear2d(batched, size, /*align_corners=*/false))
                .squeeze(0)
                .squeeze(0)
                .clamp(0.0f, 1.0f);
  }

  const auto total = digit.sum().item<double>();
  const auto ys = torch::arange(nh, torch::kFloat32).unsqueeze(1);
  const auto xs = torch::arange(nw, torch::kFloat32).unsqueeze(0);
  const double cy = (digit * ys).sum().item<double>() / total;
  const double cx = (digit * xs).sum().item<double>() / total;
  const auto top = static_cast<std::int64_t>(std::lround(kCentre - cy));
  const auto left = static_cast<std::int64_t>(std::lround(kCentre - cx));

  auto field = torch::zeros({kField, kField}, torch::kFloat32);
  // Paste with clipping: a very lopsided digit may have its centre of mass far from its box's centre.
  const auto dy0 = std::max<std::int64_t>(0, top), dx0 = std::max<std::int64_t>(0, left);
  const auto dy1 = std::min(kField, top + nh), dx1 = std::min(kField, left + nw);
  if (dy1 > dy0 && dx1 > dx0) {
    field.slice(0, dy0, dy1)
        .slice(1, dx0, dx1)
        .copy_(digit.slice(0, dy0 - top, dy1 - top).slice(1, dx0 - left, dx1 - left));
  }
  return field;
}

DigitClassifier::DigitClassifier(LoadedModel model, torch::Device device, std::optional<Precision> precision)
    : model_(model.model), device_(device) {
  const auto whole = read_contract(model);
  const auto contract = whole.as_classifier();
  const auto& shape = contract.input_shape;
  if (shape[1] != 1 || shape[2] != kField || shape[3] != kField) {
    throw ModelError("model file " + model.path + " expects input " + nlohmann::json(shape).dump() +
                     "; the digit reader makes [N, 1, 28, 28]");
  }
  scale_ = contract.scale;
  mean_ = torch::tensor(contract.mean).view({1, -1, 1, 1}).to(device_);
  std_ = torch::tensor(contract.std_dev).view({1, -1, 1, 1}).to(device_);
  num_labels_ = contract.labels.size();
  dtype_ = plan_precision(whole, model.format, precision, device_).dtype;
  model_->to(device_, dtype_, kFormAsSaved);
}

std::vector<DigitResult> DigitClassifier::classify(const torch::Tensor& normalized) const {
  torch::InferenceMode guard;
  auto x = normalized.to(device_, torch::kFloat32).unsqueeze(1);
  x = (x * (255.0f / scale_) - mean_) / std_;
  const auto outputs = model_->forward(x.to(dtype_));
  const torch::Tensor logits = outputs.empty() ? torch::Tensor() : outputs.front();
  if (!logits.defined())
    throw ModelError("the digit model returned no tensor, expected logits [N, " + std::to_string(num_labels_) + "]");
  if (logits.dim() != 2 || logits.size(1) != static_cast<std::int64_t>(num_labels_)) {
    throw ModelError("the digit model returned shape " + c10::str(logits.sizes()) + ", expected [N, " +
                     std::to_string(num_labels_) + "]");
  }
  const auto probs = torch::softmax(logits.to(torch::kFloat32), 1).cpu().contiguous();
  std::vector<DigitResult> results;
  results.reserve(probs.size(0));
  for (std::int64_t i = 0; i < probs.size(0); ++i) {
    const auto row = probs[i];
    DigitResult r;
    r.probs.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    r.digit = static_cast<int>(row.argmax().item<std::int64_t>());
    r.prob = r.probs[r.digit];
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace jitvision
