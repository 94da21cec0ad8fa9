#include "jitvision/core/letterbox.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

namespace jitvision {
namespace {

constexpr int kCoefBits = 11;  // OpenCV's INTER_RESIZE_COEF_BITS
constexpr int kCoefScale = 1 << kCoefBits;
constexpr int kPadValue = 114;

// Python's round(): half to even (the default floating-point rounding mode).
std::int64_t py_round(double v) { return static_cast<std::int64_t>(std::nearbyint(v)); }

// Source index and fixed-point weights along one axis, computed in the same float arithmetic as OpenCV.
struct Taps {
  std::vector<std::int64_t> i0, i1;
  std::vector<std::int32_t> w0, w1;
};

Taps linear_taps(std::int64_t src, std::int64_t dst) {
  const double scale = 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
  Taps t;
  for (std::int64_t d = 0; d < dst; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    auto s = static_cast<std::int64_t>(std::floor(f));
    f -= static_cast<float>(s);
    if (s < 0) {
      f = 0;
      s = 0;
    }
    if (s >= src - 1) {
      f = 0;
      s = src - 1;
    }
    t.i0.push_back(s);
    t.i1.push_back(std::min(s + 1, src - 1));
    t.w0.push_back(static_cast<std::int32_t>(std::lrint((1.0f - f) * kCoefScale)));
    t.w1.push_back(static_cast<std::int32_t>(std::lrint(f * kCoefScale)));
  }
  return t;
}

torch::Tensor as_index(const std::vector<std::int64_t>& v, const torch::Device& device) {
  return torch::tensor(v, torch::kInt64).to(device);
}
torch::Tensor as_weight(const std::vector<std::int32_t>& v, const torch::Device& device) {
  return torch::tensor(v, torch::kInt32).to(device);
}

}  // namespace

LetterboxGeometry letterbox_geometry(std::int64_t src_h, std::int64_t src_w, std::int64_t size, std::int64_t stride,
                                     LetterboxMode mode) {
  LetterboxGeometry p;
  p.src_h = src_h;
  p.src_w = src_w;
  p.ratio = std::min(static_cast<double>(size) / static_cast<double>(src_h),
                     static_cast<double>(size) / static_cast<double>(src_w));
  p.resized_w = py_round(static_cast<double>(src_w) * p.ratio);
  p.resized_h = py_round(static_cast<double>(src_h) * p.ratio);
  std::int64_t pad_w = size - p.resized_w, pad_h = size - p.resized_h;
  if (mode == LetterboxMode::Rect) {
    pad_w %= stride;
    pad_h %= stride;
  }
  const double half_w = pad_w / 2.0, half_h = pad_h / 2.0;
  p.top = py_round(half_h - 0.1);
  p.bottom = py_round(half_h + 0.1);
  p.left = py_round(half_w - 0.1);
  p.right = py_round(half_w + 0.1);
  p.out_h = p.resized_h + p.top + p.bottom;
  p.out_w = p.resized_w + p.left + p.right;
  return p;
}

torch::Tensor resize_linear_u8(const torch::Tensor& image, std::int64_t out_h, std::int64_t out_w) {
  const std::int64_t h = image.size(0), w = image.size(1);
  if (h == out_h && w == out_w) return image;
  const auto device = image.device();
  const double sx = static_cast<double>(w) / static_cast<double>(out_w);
  const double sy = static_cast<double>(h) / static_cast<double>(out_h);
  if (std::abs(sx - 2.0) < DBL_EPSILON && std::abs(sy - 2.0) < DBL_EPSILON) {
    // OpenCV turns an exact halving into a 2x2 area average with rounding.
    const auto s =
        image.slice(0, 0, 2 * out_h).slice(1, 0, 2 * out_w).to(torch::kInt32).view({out_h, 2, out_w, 2, image.size(2)});
    return s.sum({1, 3}).add_(2).floor_divide_(4).to(torch::kUInt8);
  }
  const Taps xt = linear_taps(w, out_w), yt = linear_taps(h, out_h);
  // Horizontal pass on the rows the vertical pass needs, in 32-bit fixed point.
  const auto rows0 = image.index_select(0, as_index(yt.i0, device)).to(torch::kInt32);
  const auto rows1 = image.index_select(0, as_index(yt.i1, device)).to(torch::kInt32);
  const auto xi0 = as_index(xt.i0, device), xi1 = as_index(xt.i1, device);
  const auto xw0 = as_weight(xt.w0, device).view({1, -1, 1}), xw1 = as_weight(xt.w1, device).view({1, -1, 1});
  const auto h0 = rows0.index_select(1, xi0) * xw0 + rows0.index_select(1, xi1) * xw1;
  const auto h1 = rows1.index_select(1, xi0) * xw0 + rows1.index_select(1, xi1) * xw1;
  // Vertical pass: OpenCV's VResizeLinear for 8-bit, ((b0*(S0>>4))>>16) + ((b1*(S1>>4))>>16) + 2) >> 2.
  const auto yw0 = as_weight(yt.w0, device).view({-1, 1, 1}), yw1 = as_weight(yt.w1, device).view({-1, 1, 1});
  auto out = (yw0 * h0.bitwise_right_shift(4)).bitwise_right_shift_(16) +
             (yw1 * h1.bitwise_right_shift(4)).bitwise_right_shift_(16);
  return out.add_(2).bitwise_right_shift_(2).clamp_(0, 255).to(torch::kUInt8);
}

torch::Tensor letterbox(const torch::Tensor& frame, const LetterboxGeometry& p, torch::ScalarType dtype,
                        const ResizeFn& resize) {
  const bool same_size = frame.size(0) == p.resized_h && frame.size(1) == p.resized_w;
  const auto resized = same_size ? frame : resize(frame, p.resized_h, p.resized_w);
  // One output allocation: the padding colour everywhere, then the picture converted straight into its window
  // (BGR -> RGB, HWC -> CHW, [0, 255] -> [0, 1]).
  auto input = torch::full({1, 3, p.out_h, p.out_w}, kPadValue / 255.0, frame.options().dtype(dtype));
  auto window = input.slice(2, p.top, p.top + p.resized_h).slice(3, p.left, p.left + p.resized_w);
  window.copy_(resized.permute({2, 0, 1}).flip({0}).unsqueeze(0));
  window.div_(255.0);
  return input;
}

std::int64_t round_up_to_stride(std::int64_t size, std::int64_t stride) {
  return ((size + stride - 1) / stride) * stride;
}

}  // namespace jitvision
