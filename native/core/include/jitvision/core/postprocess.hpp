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
  float conf_thres = 0.25f;             // keep rows with objectness and objectness*class probability > conf_thres
  float iou_thres = 0.45f;              // suppress a box whose IoU with a better box of its class is > iou_thres
  int max_det = 1000;                   // keep at most this many boxes per image
  std::vector<int> classes;             // keep only these classes (empty: all)
  std::int64_t max_candidates = 30000;  // boxes entering NMS, best first
  bool agnostic = false;                // boxes of different classes suppress each other too
};

// rows: [N, 5+nc] decoded rows (cx, cy, w, h, objectness, class probabilities) of one image, any device/dtype.
// Returns [M, 6] float32 on the CPU: x1, y1, x2, y2, conf, class, best first.
torch::Tensor non_max_suppression(const torch::Tensor& rows, const NmsOptions& options);

// What class-aware NMS shifts boxes ([K, 4] corners) by per class so only same-class boxes overlap: the span of
// their coordinates + 1 (a constant would be too small for some --img; see docs/yolov5.md).
float class_offset(const torch::Tensor& boxes);

// Greedy NMS over boxes already sorted best first ([K, 4] float32 CPU corners): indices kept, in order.
std::vector<std::int64_t> greedy_nms(const torch::Tensor& sorted_boxes, float iou_threshold);

// Maps [M, 6] boxes from network-input pixels back to the original frame of `geometry` (in place) and clamps them.
void scale_boxes(torch::Tensor& det, const LetterboxGeometry& geometry);

Detections to_detections(const torch::Tensor& det);

}  // namespace jitvision
