// Unit tests for prepare_for_inference: every form of the bundled digit detector gives the rows of the module as
// loaded (up to float summation order), and each form is really applied (layout of the weights, frozen or not).
#include <gtest/gtest.h>

#include <string>

#include "jitvision/core/errors.hpp"
#include "jitvision/core/inference_form.hpp"
#include "jitvision/core/model.hpp"

namespace jitvision {
namespace {

std::string bundled(const std::string& name) { return std::string(JITVISION_TEST_MODELS_DIR) + "/" + name; }

torch::jit::Module detector() { return load_model(bundled("digits_yolov5n.torchscript")).module; }

torch::Tensor rows(torch::jit::Module module, const torch::Tensor& input) {
  torch::InferenceMode guard;
  const auto out = module.forward({input});
  return out.isTuple() ? out.toTupleRef().elements()[0].toTensor() : out.toTensor();
}

TEST(InferenceForm, EveryFormGivesTheRowsOfTheModuleAsLoaded) {
  torch::manual_seed(0);
  const auto input = torch::rand({1, 3, 256, 320});
  const auto reference = rows(detector(), input);
  for (const auto layout : {Layout::Contiguous, Layout::ChannelsLast}) {
    for (const bool freeze : {false, true}) {
      const auto module = prepare_for_inference(detector(), torch::kCPU, torch::kFloat32, {layout, freeze, false});
      const auto got = rows(module, input);
      ASSERT_EQ(got.sizes(), reference.sizes());
      // rows hold pixel boxes (0..320) and probabilities: 1e-3 is far inside the app's 1 px / 0.002 parity gate
      EXPECT_LT((got - reference).abs().max().item<float>(), 1e-3f) << layout_name(layout) << " freeze " << freeze;
    }
  }
}

TEST(InferenceForm, ChannelsLastPutsTheConvolutionWeightsInNhwc) {
  const auto module = prepare_for_inference(detector(), torch::kCPU, torch::kFloat32, {Layout::ChannelsLast, false});
  int convolutions = 0;
  for (const auto& p : module.parameters()) {
    if (p.dim() != 4) continue;
    ++convolutions;
    EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
    // (1x1 kernels are contiguous in both layouts)
    if (p.size(1) > 1 && (p.size(2) > 1 || p.size(3) > 1)) EXPECT_FALSE(p.is_contiguous());
  }
  EXPECT_GT(convolutions, 10);
}

TEST(InferenceForm, FreezingTurnsParametersIntoConstants) {
  const auto loaded = detector();
  ASSERT_GT(loaded.parameters().size(), 0u);
  const auto frozen = prepare_for_inference(detector(), torch::kCPU, torch::kFloat32, {Layout::Contiguous, true});
  EXPECT_EQ(frozen.parameters().size(), 0u);
  const auto unfrozen = prepare_for_inference(detector(), torch::kCPU, torch::kFloat32, {Layout::Contiguous, false});
  EXPECT_EQ(unfrozen.parameters().size(), loaded.parameters().size());
}

TEST(InferenceForm, LayoutNamesRoundTripAndUnknownOnesAreUsageErrors) {
  for (const auto layout : {Layout::Contiguous, Layout::ChannelsLast})
    EXPECT_EQ(parse_layout(layout_name(layout)), layout);
  EXPECT_THROW(parse_layout("nhwc"), UsageError);
}

}  // namespace
}  // namespace jitvision
