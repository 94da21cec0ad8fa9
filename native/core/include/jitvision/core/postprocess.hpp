#pragma once
// YOLOv5 post-processing: confidence filter, class-aware greedy NMS and scaling boxes back to the frame, with the
// reference detector's semantics (see docs/detect.md).
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "jitvision/core/detection.hpp"
#include "jitvision/core/letterbox.hpp"

namespace jitvision {

struct NmsOptions {
  float conf = 0.25f;           // keep rows with objectness > conf and objectness*class probability > conf
  float iou = 0.45f;            // suppress a box whose IoU with a better box of its class is > iou
  int max_det = 1000;           // keep at most this many boxes per image
  std::vector<int> classes;     // keep only these classes (empty: all)
  std::int64_t max_candidates = 30000;  // boxes entering NMS, best first
};

// rows: [N, 5+nc] decoded rows (cx, cy, w, h, objectness, class probabilities) of one image, any device/dtype.
// Returns [M, 6] float32 on the CPU: x1, y1, x2, y2, conf, class, best first.
torch::Tensor non_max_suppression(const torch::Tensor& rows, const NmsOptions& options);

// Greedy NMS over boxes already sorted best first ([K, 4] float32 CPU corners): indices kept, in order.
std::vector<std::int64_t> greedy_nms(const torch::Tensor& sorted_boxes, float iou_threshold);

// Maps [M, 6] boxes from network-input pixels back to the original frame of `plan` (in place) and clamps them.
void scale_boxes_to_frame(torch::Tensor& det, const LetterboxPlan& plan);

Detections to_detections(const torch::Tensor& det);

}  // namespace jitvision
