// NMS and box scaling against brute-force references.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "jitvision/core/postprocess.hpp"

namespace jitvision {
namespace {

float iou(const float* a, const float* b) {
  const float w = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float h = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

// The definition: walk boxes best first, keep one unless it overlaps a kept box of its class by more than t.
std::vector<std::int64_t> brute_force(const torch::Tensor& det, float t) {
  std::vector<std::int64_t> kept;
  const float* p = det.data_ptr<float>();
  for (std::int64_t i = 0; i < det.size(0); ++i) {
    bool ok = true;
    for (auto k : kept) {
      if (p[6 * k + 5] == p[6 * i + 5] && iou(p + 6 * k, p + 6 * i) > t) ok = false;
    }
    if (ok) kept.push_back(i);
  }
  return kept;
}

torch::Tensor random_rows(std::int64_t n, std::int64_t nc, int seed) {
  torch::manual_seed(seed);
  auto rows = torch::rand({n, 5 + nc});
  rows.select(1, 0).mul_(600).add_(20);
  rows.select(1, 1).mul_(600).add_(20);
  rows.select(1, 2).mul_(120).add_(4);
  rows.select(1, 3).mul_(120).add_(4);
  return rows;
}

TEST(Nms, MatchesBruteForceOnRandomBoxes) {
  for (int seed = 0; seed < 5; ++seed) {
    const auto rows = random_rows(400, 3, seed);
    NmsOptions o;
    o.conf_thres = 0.1f;
    o.max_det = 100000;
    const auto out = non_max_suppression(rows, o);

    // Reference: the same candidates, sorted, then the definition above.
    auto scores = rows.slice(1, 5) * rows.slice(1, 4, 5);
    auto [conf, cls] = scores.max(1);
    const auto c = rows.select(1, 0), cy = rows.select(1, 1), w = rows.select(1, 2) / 2, h = rows.select(1, 3) / 2;
    auto det = torch::stack({c - w, cy - h, c + w, cy + h, conf, cls.to(torch::kFloat32)}, 1);
    det = det.index({(rows.select(1, 4) > o.conf_thres) & (conf > o.conf_thres)});
    det = det.index({det.select(1, 4).argsort(true, 0, true)}).contiguous();
    const auto expected = det.index_select(0, torch::tensor(brute_force(det, o.iou_thres)));
    ASSERT_EQ(out.sizes(), expected.sizes()) << "seed " << seed;
    EXPECT_TRUE(torch::allclose(out, expected));
  }
}

TEST(Nms, ClassesDoNotSuppressEachOther) {
  // Two identical boxes of different classes both survive; the same box twice in one class keeps the better.
  auto rows = torch::zeros({3, 7});
  rows.index_put_({0}, torch::tensor({50.f, 50.f, 20.f, 20.f, 0.9f, 1.0f, 0.0f}));
  rows.index_put_({1}, torch::tensor({50.f, 50.f, 20.f, 20.f, 0.8f, 0.0f, 1.0f}));
  rows.index_put_({2}, torch::tensor({51.f, 50.f, 20.f, 20.f, 0.7f, 1.0f, 0.0f}));
  const auto out = non_max_suppression(rows, NmsOptions{});
  ASSERT_EQ(out.size(0), 2);
  EXPECT_FLOAT_EQ(out[0][4].item<float>(), 0.9f);
  EXPECT_FLOAT_EQ(out[0][5].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(out[1][5].item<float>(), 1.0f);
}

TEST(Nms, AgnosticLetsClassesSuppressEachOther) {
  // The same three rows as above: class-agnostic NMS keeps only the best of the overlapping boxes.
  auto rows = torch::zeros({3, 7});
  rows.index_put_({0}, torch::tensor({50.f, 50.f, 20.f, 20.f, 0.9f, 1.0f, 0.0f}));
  rows.index_put_({1}, torch::tensor({50.f, 50.f, 20.f, 20.f, 0.8f, 0.0f, 1.0f}));
  rows.index_put_({2}, torch::tensor({51.f, 50.f, 20.f, 20.f, 0.7f, 1.0f, 0.0f}));
  NmsOptions o;
  o.agnostic = true;
  const auto out = non_max_suppression(rows, o);
  ASSERT_EQ(out.size(0), 1);
  EXPECT_FLOAT_EQ(out[0][4].item<float>(), 0.9f);
}

TEST(Nms, ClassesDoNotSuppressEachOtherAtImg8192) {
  // A class-1 box at (100, 100) moved by a constant 7680 per class lands on the class-0 box at (7780, 7780).
  auto rows = torch::zeros({2, 7});
  rows.index_put_({0}, torch::tensor({7780.f, 7780.f, 100.f, 100.f, 0.9f, 0.9f, 0.1f}));
  rows.index_put_({1}, torch::tensor({100.f, 100.f, 100.f, 100.f, 0.8f, 0.1f, 0.9f}));
  const auto out = non_max_suppression(rows, NmsOptions{});
  ASSERT_EQ(out.size(0), 2);
  EXPECT_FLOAT_EQ(out[0][5].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(out[1][5].item<float>(), 1.0f);
}

TEST(Nms, ThresholdsClassFilterAndMaxDet) {
  const auto rows = random_rows(300, 4, 11);
  NmsOptions o;
  o.conf_thres = 0.3f;
  const auto all = non_max_suppression(rows, o);
  EXPECT_TRUE((all.select(1, 4) > 0.3f).all().item<bool>());
  o.classes = {2};
  const auto only2 = non_max_suppression(rows, o);
  EXPECT_TRUE((only2.select(1, 5) == 2).all().item<bool>());
  o.classes.clear();
  o.max_det = 3;
  EXPECT_EQ(non_max_suppression(rows, o).size(0), 3);
  EXPECT_EQ(non_max_suppression(torch::zeros({0, 9}), NmsOptions{}).size(0), 0);
}

TEST(ScaleBoxes, UndoesTheLetterbox) {
  const auto geometry = letterbox_geometry(720, 1280, 640, 32, LetterboxMode::Rect);  // 0.5x, 12 px top padding
  auto det = torch::tensor({{100.f, 12.f, 300.f, 200.f, 0.9f, 0.f}, {-5.f, 0.f, 700.f, 390.f, 0.5f, 1.f}});
  scale_boxes(det, geometry);
  EXPECT_FLOAT_EQ(det[0][0].item<float>(), 200.f);
  EXPECT_FLOAT_EQ(det[0][1].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(det[0][2].item<float>(), 600.f);
  EXPECT_FLOAT_EQ(det[0][3].item<float>(), 376.f);
  EXPECT_FLOAT_EQ(det[1][0].item<float>(), 0.f);     // clamped
  EXPECT_FLOAT_EQ(det[1][2].item<float>(), 1280.f);  // clamped
  EXPECT_FLOAT_EQ(det[1][3].item<float>(), 720.f);   // clamped
  const auto d = to_detections(det);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1].cls, 1);
}

}  // namespace
}  // namespace jitvision
