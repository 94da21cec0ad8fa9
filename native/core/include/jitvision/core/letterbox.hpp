#pragma once
// YOLOv5 letterbox on tensors, bit-exact with the reference detector (OpenCV's INTER_LINEAR resize, pad 114).
#include <cstdint>
#include <functional>

#include <torch/types.h>

namespace jitvision {

enum class LetterboxMode {
  Rect,    // pad only up to the next multiple of the stride (dynamic-shape models): less compute on 16:9 video
  Square,  // pad to size x size (fixed-shape models, e.g. the official TorchScript export)
};

struct LetterboxGeometry {
  std::int64_t src_h = 0, src_w = 0;  // original frame
  std::int64_t resized_h = 0, resized_w = 0;
  std::int64_t top = 0, bottom = 0, left = 0, right = 0;
  std::int64_t out_h = 0, out_w = 0;  // network input
  double ratio = 1.0;
};

// The arithmetic only: r = min(size/h, size/w), resized = round(w*r) x round(h*r) (half to even, as Python's
// round), padding reduced modulo the stride in Rect mode, split round(p/2 - 0.1) / round(p/2 + 0.1).
LetterboxGeometry letterbox_geometry(std::int64_t src_h, std::int64_t src_w, std::int64_t size, std::int64_t stride,
                                     LetterboxMode mode);

// Resizes an HxWxC uint8 tensor (any device) to (out_h, out_w) exactly as OpenCV's cv::resize(INTER_LINEAR) does
// for 8-bit images: 11-bit fixed-point coefficients, and the 2x2 area average for an exact halving.
torch::Tensor resize_linear_u8(const torch::Tensor& image_hwc, std::int64_t out_h, std::int64_t out_w);

// A resize with resize_linear_u8's contract (HxWxC uint8 -> out_h x out_w x C uint8, bit-exact with OpenCV's
// INTER_LINEAR). The app plugs OpenCV's own SIMD implementation in for frames on the CPU; the core stays OpenCV-free.
using ResizeFn = std::function<torch::Tensor(const torch::Tensor&, std::int64_t, std::int64_t)>;

// Full preprocessing: frame HxWx3 uint8 BGR (any device) -> [1, 3, out_h, out_w] RGB in [0, 1] of `dtype`.
torch::Tensor letterbox(const torch::Tensor& frame_hwc_bgr, const LetterboxGeometry& geometry, torch::ScalarType dtype,
                        const ResizeFn& resize = resize_linear_u8);

// Rounds an input size up to a multiple of the stride.
std::int64_t round_up_to_stride(std::int64_t size, std::int64_t stride);

}  // namespace jitvision
