// Detector::infer_batch against infer(): the same detections for every frame of a batch, on the bundled digit
// detector (CPU; also CUDA where one is usable), with a low threshold so that random frames give many boxes.
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "jitvision/core/detector.hpp"

namespace jitvision {
namespace {

std::string bundled(const std::string& name) { return std::string(JITVISION_TEST_MODELS_DIR) + "/" + name; }

Detector detector_on(torch::Device device) {
  DetectorOptions options;
  options.img_size = 128;
  options.nms.conf_thres = 0.001f;
  return Detector(load_model(bundled("digits_yolov5n.torchscript")), device, options);
}

torch::Tensor frame(int seed, std::int64_t h, std::int64_t w) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {h, w, 3}, torch::kUInt8);
}

void expect_batch_equals_single(torch::Device device) {
  Detector d = detector_on(device);
  std::vector<PreparedFrame> prepared;
  for (int i = 0; i < 3; ++i) prepared.push_back(d.prepare(frame(i, 96, 128)));
  std::vector<const PreparedFrame*> batch;
  for (const auto& p : prepared) batch.push_back(&p);
  std::vector<StageTimes> times;
  const auto batched = d.infer_batch(batch, &times);
  ASSERT_EQ(batched.size(), 3u);
  ASSERT_EQ(times.size(), 3u);
  std::size_t boxes = 0;
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    const auto single = d.infer(prepared[i]);
    ASSERT_EQ(batched[i].size(), single.size()) << "frame " << i;
    boxes += single.size();
    for (std::size_t k = 0; k < single.size(); ++k) {
      EXPECT_EQ(batched[i][k].cls, single[k].cls);
      EXPECT_NEAR(batched[i][k].x1, single[k].x1, 0.01);
      EXPECT_NEAR(batched[i][k].y2, single[k].y2, 0.01);
      EXPECT_NEAR(batched[i][k].conf, single[k].conf, 1e-4);
    }
  }
  EXPECT_GT(boxes, 0u);  // something to compare
}

TEST(DetectorBatch, EveryFrameOfABatchGetsItsOwnDetectionsAsAlone) { expect_batch_equals_single(torch::kCPU); }

TEST(DetectorBatch, OnCudaToo) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_batch_equals_single(torch::Device(torch::kCUDA, 0));
}

TEST(DetectorBatch, RefusesAnEmptyBatchAndMixedShapes) {
  Detector d = detector_on(torch::kCPU);
  EXPECT_THROW(d.infer_batch({}), std::invalid_argument);
  const auto wide = d.prepare(frame(1, 96, 128));
  const auto tall = d.prepare(frame(2, 128, 96));
  EXPECT_THROW(d.infer_batch({&wide, &tall}), std::invalid_argument);
}

}  // namespace
}  // namespace jitvision
