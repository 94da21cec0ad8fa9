#include "jitvision/core/postprocess.hpp"

#include <algorithm>

namespace jitvision {

float class_offset(const torch::Tensor& boxes) {
  if (boxes.numel() == 0) return 1.0f;
  return (boxes.max() - boxes.min()).item<float>() + 1.0f;
}

std::vector<std::int64_t> greedy_nms(const torch::Tensor& boxes, float iou_threshold) {
  const auto n = boxes.size(0);
  const auto b = boxes.contiguous();
  const float* p = b.data_ptr<float>();
  std::vector<float> area(n);
  for (std::int64_t i = 0; i < n; ++i) area[i] = (p[4 * i + 2] - p[4 * i]) * (p[4 * i + 3] - p[4 * i + 1]);
  std::vector<char> suppressed(n, 0);
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    keep.push_back(i);
    const float ix1 = p[4 * i], iy1 = p[4 * i + 1], ix2 = p[4 * i + 2], iy2 = p[4 * i + 3];
    for (std::int64_t j = i + 1; j < n; ++j) {
      if (suppressed[j]) continue;
      const float w = std::max(0.0f, std::min(ix2, p[4 * j + 2]) - std::max(ix1, p[4 * j]));
      const float h = std::max(0.0f, std::min(iy2, p[4 * j + 3]) - std::max(iy1, p[4 * j + 1]));
      const float inter = w * h;
      if (inter / (area[i] + area[j] - inter) > iou_threshold) suppressed[j] = 1;
    }
  }
  return keep;
}

torch::Tensor non_max_suppression(const torch::Tensor& rows_in, const NmsOptions& o) {
  auto x = rows_in.to(torch::kFloat32);
  x = x.index({x.select(1, 4) > o.conf_thres});
  auto empty = torch::zeros({0, 6}, torch::kFloat32);
  if (x.size(0) == 0) return empty;

  auto cls_scores = x.slice(1, 5) * x.slice(1, 4, 5);  // objectness x class probability
  const auto cx = x.select(1, 0), cy = x.select(1, 1), hw = x.select(1, 2) / 2, hh = x.select(1, 3) / 2;
  const auto boxes = torch::stack({cx - hw, cy - hh, cx + hw, cy + hh}, 1);
  auto [conf, cls] = cls_scores.max(1, /*keepdim=*/true);
  auto det = torch::cat({boxes, conf, cls.to(torch::kFloat32)}, 1);
  det = det.index({conf.view(-1) > o.conf_thres});
  if (!o.classes.empty() && det.size(0) > 0) {
    const auto wanted =
        torch::tensor(std::vector<std::int64_t>(o.classes.begin(), o.classes.end()), torch::kFloat32).to(det.device());
    det = det.index({(det.slice(1, 5, 6) == wanted).any(1)});
  }
  if (det.size(0) == 0) return empty;
  det =
      det.index(
             {det.select(1, 4).argsort(/*stable=*/true, /*dim=*/0, /*descending=*/true).slice(0, 0, o.max_candidates)})
          .cpu()
          .contiguous();

  const float offset = o.agnostic ? 0.0f : class_offset(det.slice(1, 0, 4));
  const auto offset_boxes = (det.slice(1, 0, 4) + det.slice(1, 5, 6) * offset).contiguous();
  auto keep = greedy_nms(offset_boxes, o.iou_thres);
  if (static_cast<std::int64_t>(keep.size()) > o.max_det) keep.resize(o.max_det);
  return det.index_select(0, torch::tensor(keep, torch::kInt64));
}

void scale_boxes(torch::Tensor& det, const LetterboxGeometry& geometry) {
  if (det.size(0) == 0) return;
  const double gain = std::min(static_cast<double>(geometry.out_h) / static_cast<double>(geometry.src_h),
                               static_cast<double>(geometry.out_w) / static_cast<double>(geometry.src_w));
  const double pad_x = (static_cast<double>(geometry.out_w) - static_cast<double>(geometry.src_w) * gain) / 2.0;
  const double pad_y = (static_cast<double>(geometry.out_h) - static_cast<double>(geometry.src_h) * gain) / 2.0;
  auto xs = det.index({torch::indexing::Slice(), torch::tensor({0, 2})});
  auto ys = det.index({torch::indexing::Slice(), torch::tensor({1, 3})});
  xs = ((xs - pad_x) / gain).clamp(0.0, static_cast<double>(geometry.src_w));
  ys = ((ys - pad_y) / gain).clamp(0.0, static_cast<double>(geometry.src_h));
  det.index_put_({torch::indexing::Slice(), torch::tensor({0, 2})}, xs);
  det.index_put_({torch::indexing::Slice(), torch::tensor({1, 3})}, ys);
}

Detections to_detections(const torch::Tensor& det) {
  const auto d = det.to(torch::kCPU, torch::kFloat32).contiguous();
  const float* p = d.data_ptr<float>();
  Detections out(static_cast<std::size_t>(d.size(0)));
  for (std::int64_t i = 0; i < d.size(0); ++i) {
    const float* r = p + 6 * i;
    out[i] = Detection{r[0], r[1], r[2], r[3], r[4], static_cast<int>(r[5])};
  }
  return out;
}

}  // namespace jitvision
