// Unit tests for --dtype: which precision each kind of model file runs in (plan_precision), and the head split that
// keeps the Detect head in float32 while the rest is converted (convert_except_head).
#include <gtest/gtest.h>

#include <string>

#include "jitvision/core/errors.hpp"
#include "jitvision/core/inference_form.hpp"
#include "jitvision/core/precision.hpp"

namespace jitvision {
namespace {

const torch::Device kCpu(torch::kCPU);

ModelContract detector(const std::string& fp32_head) {
  ModelContract c;
  c.path = "m.torchscript";
  c.kind = ModelKind::Detector;
  c.task = "detect";
  c.detector = DetectorContract{};
  c.detector->names = {"a"};
  c.detector->fp32_head = fp32_head;
  return c;
}

ModelContract classifier() {
  ModelContract c;
  c.path = "mnist.torchscript";
  c.kind = ModelKind::Classifier;
  c.task = "digits";
  c.classifier = ClassifierContract{};
  return c;
}

ModelContract package(const std::string& dtype) {
  auto c = detector("");
  c.path = "m.pt2";
  c.package_dtype = dtype;
  return c;
}

// The message of the exception of type E that `call` throws ("" when it throws none).
template <typename E, typename F>
std::string message_of(F&& call) {
  try {
    call();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Precision, NamesRoundTripAndUnknownNamesAreUsageErrors) {
  for (const auto p : {Precision::Float32, Precision::BFloat16, Precision::Float16}) {
    EXPECT_EQ(parse_precision(std::string(precision_name(p))), p);
  }
  EXPECT_EQ(scalar_type(Precision::BFloat16), torch::kBFloat16);
  EXPECT_EQ(scalar_type(Precision::Float16), torch::kHalf);
  EXPECT_TRUE(contains(message_of<UsageError>([] { parse_precision("float16"); }), "fp32, bf16 or fp16"));
}

TEST(Precision, Bf16DetectorRunsItsBodyInBf16AndKeepsTheRecordedHeadInFloat32) {
  const auto plan = plan_precision(detector("model.24"), ModelFormat::TorchScript, Precision::BFloat16, kCpu, true);
  EXPECT_EQ(plan.dtype, torch::kBFloat16);
  EXPECT_EQ(plan.fp32_head, "model.24");
  const auto fp32 = plan_precision(detector("model.24"), ModelFormat::TorchScript, std::nullopt, kCpu, true);
  EXPECT_EQ(fp32.dtype, torch::kFloat32);
  EXPECT_EQ(fp32.fp32_head, "");
}

TEST(Precision, Bf16DetectorWithoutAHeadSplitIsRefusedWithHowToReExport) {
  const auto message = message_of<ModelError>(
      [] { plan_precision(detector(""), ModelFormat::TorchScript, Precision::BFloat16, kCpu, true); });
  EXPECT_TRUE(contains(message, "m.torchscript cannot run in bf16")) << message;
  EXPECT_TRUE(contains(message, "python -m jitvision yolov5 import")) << message;
}

TEST(Precision, Bf16ClassifierRunsWhole) {
  const auto plan = plan_precision(classifier(), ModelFormat::TorchScript, Precision::BFloat16, kCpu, true);
  EXPECT_EQ(plan.dtype, torch::kBFloat16);
  EXPECT_EQ(plan.fp32_head, "");
}

TEST(Precision, CpusWithoutBf16AndFp16OnTheCpuAreDeviceErrors) {
  EXPECT_TRUE(contains(message_of<DeviceError>([] {
                         plan_precision(detector("model.24"), ModelFormat::TorchScript, Precision::BFloat16, kCpu,
                                        false);
                       }),
                       "bfloat16 needs a CPU with AVX512-BF16 or AMX"));
  EXPECT_TRUE(contains(message_of<DeviceError>([] {
                         plan_precision(classifier(), ModelFormat::TorchScript, Precision::Float16, kCpu, true);
                       }),
                       "--dtype fp16 needs a CUDA device"));
  // fp32 never asks about the CPU
  EXPECT_EQ(plan_precision(classifier(), ModelFormat::TorchScript, Precision::Float32, kCpu, false).dtype,
            torch::kFloat32);
}

TEST(Precision, APackageRunsInItsCompiledPrecisionAndTakesFloat32) {
  EXPECT_EQ(plan_precision(package("bf16"), ModelFormat::Pt2, std::nullopt, kCpu, true).dtype, torch::kFloat32);
  EXPECT_EQ(plan_precision(package("bf16"), ModelFormat::Pt2, Precision::BFloat16, kCpu, true).dtype, torch::kFloat32);
  EXPECT_EQ(plan_precision(package(""), ModelFormat::Pt2, Precision::Float32, kCpu, true).dtype, torch::kFloat32);
  const auto mismatch = message_of<UsageError>(
      [] { plan_precision(package("fp32"), ModelFormat::Pt2, Precision::BFloat16, kCpu, true); });
  EXPECT_TRUE(contains(mismatch, "m.pt2 is a .pt2 package compiled for fp32")) << mismatch;
  EXPECT_TRUE(contains(mismatch, "export it again with --dtype bf16")) << mismatch;
  // a bf16 package on a CPU without bf16 is refused as well, asked for or not
  EXPECT_FALSE(message_of<DeviceError>([] {
                 plan_precision(package("bf16"), ModelFormat::Pt2, std::nullopt, kCpu, false);
               }).empty());
  EXPECT_TRUE(contains(
      message_of<ModelError>([] { plan_precision(package("int8"), ModelFormat::Pt2, std::nullopt, kCpu, true); }),
      "names dtype 'int8'"));
}

TEST(Precision, AServerModelTakesOnlyFp32) {
  EXPECT_FALSE(message_of<UsageError>([] {
                 plan_precision(detector("model.24"), ModelFormat::Triton, Precision::BFloat16, kCpu, true);
               }).empty());
  EXPECT_EQ(plan_precision(detector(""), ModelFormat::Triton, std::nullopt, kCpu, true).dtype, torch::kFloat32);
}

// root { w, body { w }, head { w, anchors (buffer), step (int buffer) } }
torch::jit::Module toy_module() {
  torch::jit::Module head("head");
  head.register_parameter("w", torch::full({2, 2, 1, 1}, 1.0 + 1.0 / 1024), false);
  head.register_buffer("anchors", torch::tensor({373.0f / 32, 326.0f / 32}));
  head.register_buffer("step", torch::tensor({3}, torch::kLong));
  torch::jit::Module body("body");
  body.register_parameter("w", torch::ones({2, 2, 3, 3}), false);
  torch::jit::Module root("root");
  root.register_parameter("w", torch::ones({2}), false);
  root.register_module("body", body);
  root.register_module("model", torch::jit::Module("model"));
  root.attr("model").toModule().register_module("24", head);
  return root;
}

TEST(HeadSplit, TheHeadStaysFloat32UnroundedAndEverythingElseIsConverted) {
  auto module = toy_module();
  convert_except_head(module, torch::kBFloat16, "model.24");
  for (const auto& p : module.named_parameters()) {
    EXPECT_EQ(p.value.scalar_type(), p.name == "model.24.w" ? torch::kFloat32 : torch::kBFloat16) << p.name;
  }
  const auto head = module.attr("model").toModule().attr("24").toModule();
  // 1 + 2^-10 and 373/32 are not bf16 numbers: the head's tensors were never rounded through bf16
  EXPECT_EQ(head.attr("w").toTensor().max().item<double>(), 1.0 + 1.0 / 1024);
  EXPECT_EQ(head.attr("anchors").toTensor()[0].item<float>(), 373.0f / 32);
  EXPECT_EQ(head.attr("step").toTensor().scalar_type(), torch::kLong);
}

TEST(HeadSplit, AHeadTheModuleDoesNotHaveIsAModelError) {
  auto module = toy_module();
  EXPECT_TRUE(contains(message_of<ModelError>([&] { convert_except_head(module, torch::kBFloat16, "model.9"); }),
                       "no submodule 'model.9'"));
  // "model.2" is a prefix of no submodule name either ("model.24" is not under "model.2.")
  EXPECT_FALSE(message_of<ModelError>([&] { convert_except_head(module, torch::kBFloat16, "model.2"); }).empty());
}

}  // namespace
}  // namespace jitvision
