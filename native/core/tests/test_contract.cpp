// Unit tests for read_contract: the bundled models, and tiny TorchScript modules carrying hand-written metadata.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "jitvision/core/contract.hpp"
#include "jitvision/core/detector.hpp"
#include "jitvision/core/digits.hpp"
#include "jitvision/core/errors.hpp"
#include "temp_files.hpp"

namespace jitvision {
namespace {

namespace fs = std::filesystem;

std::string bundled(const std::string& name) { return std::string(JITVISION_TEST_MODELS_DIR) + "/" + name; }

// An identity module saved with the given extra files (e.g. {"jitvision.json", "{...}"}), loaded back.
LoadedModel tiny_model(const torch::jit::ExtraFilesMap& extra) {
  torch::jit::Module module("Tiny");
  module.define("def forward(self, x):\n  return x\n");
  const auto path = testutil::temp_path("contract.pt");
  module.save(path.string(), extra);
  auto model = load_model(path.string());
  fs::remove(path);
  return model;
}

// A module built in memory, as load_model would return it.
LoadedModel in_memory(const std::string& path, const torch::jit::Module& module) {
  LoadedModel model;
  model.path = path;
  model.module = module;
  return model;
}

// The ModelError message `call` throws ("" when it throws none).
template <typename F>
std::string model_error(F&& call) {
  try {
    call();
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

TEST(Contract, KindNames) {
  EXPECT_EQ(to_string(ModelKind::Detector), "detector");
  EXPECT_EQ(to_string(ModelKind::Classifier), "classifier");
  EXPECT_EQ(to_string(ModelKind::Unknown), "unknown");
}

TEST(Contract, BundledDigitDetector) {
  const auto c = read_contract(load_model(bundled("digits_yolov5n.torchscript")));
  EXPECT_EQ(c.kind, ModelKind::Detector);
  EXPECT_EQ(c.task, "detect");
  ASSERT_TRUE(c.detector.has_value());
  EXPECT_FALSE(c.classifier.has_value());
  const auto& d = c.as_detector();
  EXPECT_EQ(d.origin, "jitvision");
  EXPECT_TRUE(d.dynamic);
  EXPECT_EQ(d.letterbox, LetterboxMode::Rect);
  EXPECT_EQ(d.stride, 32);
  EXPECT_EQ(d.img_size, 256);
  ASSERT_EQ(d.names.size(), 10u);
  EXPECT_EQ(d.names[7], "7");
  EXPECT_EQ(d.resolve_img_size(0), 256);
  EXPECT_EQ(d.resolve_img_size(300), 320);  // rounded up to the stride
  EXPECT_NE(model_error([&] { c.as_classifier(); }).find("is a 'detect' model, not a digit classifier"),
            std::string::npos);
}

TEST(Contract, BundledDigitClassifier) {
  auto model = load_model(bundled("mnist.torchscript"));
  const auto c = read_contract(model);
  EXPECT_EQ(c.kind, ModelKind::Classifier);
  EXPECT_EQ(c.task, "digits");
  ASSERT_TRUE(c.classifier.has_value());
  EXPECT_FALSE(c.detector.has_value());
  const auto& k = c.as_classifier();
  EXPECT_EQ(k.input_shape, (std::vector<std::int64_t>{1, 1, 28, 28}));
  EXPECT_FLOAT_EQ(k.scale, 255.0f);
  ASSERT_EQ(k.mean.size(), 1u);
  EXPECT_NEAR(k.mean[0], 0.1307f, 1e-6);
  EXPECT_NEAR(k.std_dev[0], 0.3081f, 1e-6);
  EXPECT_EQ(k.labels.size(), 10u);
  // The detector refuses it, naming what it is.
  const auto message = model_error([&] { Detector(model, torch::kCPU, DetectorOptions{}); });
  EXPECT_NE(message.find("a digit classifier: use `jitvision digits`"), std::string::npos) << message;
}

TEST(Contract, OfficialConfigOnlyIsAFixedDetector) {
  const auto c = read_contract(
      tiny_model({{"config.txt", R"({"shape": [1, 3, 64, 96], "stride": 32, "names": {"0": "ball", "1": "goal"}})"}}));
  EXPECT_EQ(c.kind, ModelKind::Detector);
  EXPECT_EQ(c.task, "detect");
  const auto& d = c.as_detector();
  EXPECT_EQ(d.origin, "ultralytics");
  EXPECT_FALSE(d.dynamic);
  EXPECT_EQ(d.letterbox, LetterboxMode::Square);
  EXPECT_EQ(d.input_h, 64);
  EXPECT_EQ(d.input_w, 96);
  EXPECT_EQ(d.names, (std::vector<std::string>{"ball", "goal"}));
  EXPECT_EQ(d.resolve_img_size(640), 96);  // a fixed model keeps its own size
  EXPECT_NE(model_error([&] { c.as_classifier(); }).find("carries no jitvision.json metadata"), std::string::npos);
}

TEST(Contract, NoMetadataIsUnknown) {
  const auto c = read_contract(tiny_model({}));
  EXPECT_EQ(c.kind, ModelKind::Unknown);
  EXPECT_EQ(c.task, "");
  EXPECT_FALSE(c.detector.has_value());
  EXPECT_FALSE(c.classifier.has_value());
  EXPECT_NE(model_error([&] { c.as_detector(); }).find("neither jitvision.json nor config.txt"), std::string::npos);
  EXPECT_NE(model_error([&] { c.as_classifier(); }).find("carries no jitvision.json metadata"), std::string::npos);
}

TEST(Contract, UnknownTaskIsUnknown) {
  const auto c = read_contract(tiny_model({{"jitvision.json", R"({"task": "segment"})"}}));
  EXPECT_EQ(c.kind, ModelKind::Unknown);
  EXPECT_EQ(c.task, "segment");
  EXPECT_NE(model_error([&] { c.as_detector(); }).find("is a 'segment' model, not a YOLOv5 detector"),
            std::string::npos);
}

TEST(Contract, IncompleteMetadataIsAModelError) {
  const auto detector = tiny_model({{"jitvision.json", R"({"task": "detect", "dynamic": true})"}});
  EXPECT_NE(model_error([&] { read_contract(detector); }).find("incomplete detector metadata"), std::string::npos);
  const auto gaps = tiny_model({{"jitvision.json",
                                 R"({"task": "detect", "dynamic": true, "letterbox": "rect", "stride": 32,
                                     "img_size": 64, "names": {"0": "a", "2": "b"}})"}});
  EXPECT_NE(model_error([&] { read_contract(gaps); }).find("class name keys that are not 0..n-1"), std::string::npos);
  const auto classifier = tiny_model({{"jitvision.json", R"({"task": "digits", "input": {"shape": [1, 1, 28, 28]}})"}});
  EXPECT_NE(model_error([&] { read_contract(classifier); }).find("incomplete digit metadata"), std::string::npos);
}

// Metadata no sane export has is a ModelError naming the bad value (tests/test_model_file.py: the same in Python).
TEST(Contract, BadDetectorValuesAreModelErrors) {
  const std::string ours = R"({"task": "detect", "dynamic": true, "letterbox": "rect", "stride": 32, "img_size": 64, )";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {ours + R"("names": {"zero": "a"}})", "has class name key 'zero', not a class index"},
      {ours + R"("names": {"99999999999": "a"}})", "has class name key '99999999999', not a class index"},
      {ours + R"("names": {"1x": "a"}})", "has class name key '1x', not a class index"},
      {R"({"task": "detect", "dynamic": true, "letterbox": "banana", "stride": 32, "img_size": 64, "names": ["a"]})",
       "has letterbox 'banana', not rect or square"},
      {R"({"task": "detect", "dynamic": true, "letterbox": "rect", "stride": 12, "img_size": 64, "names": ["a"]})",
       "has stride 12, not a power of two from 1 to 256"},
      {R"({"task": "detect", "dynamic": true, "letterbox": "rect", "stride": 0, "img_size": 64, "names": ["a"]})",
       "has stride 0, not a power of two from 1 to 256"},
      {R"({"task": "detect", "dynamic": true, "letterbox": "rect", "stride": 32, "img_size": 0, "names": ["a"]})",
       "has input size 0, not from 1 to 8192"},
      {R"({"task": "detect", "dynamic": true, "letterbox": "rect", "stride": 32, "img_size": 9000, "names": ["a"]})",
       "has input size 9000, not from 1 to 8192"},
  };
  for (const auto& [meta, message] : cases) {
    const auto model = tiny_model({{"jitvision.json", meta}});
    EXPECT_NE(model_error([&] { read_contract(model); }).find(message), std::string::npos) << meta;
  }
  const auto official = tiny_model({{"config.txt", R"({"shape": [1, 3, -64, 96], "stride": 32, "names": ["a"]})"}});
  EXPECT_NE(model_error([&] { read_contract(official); }).find("has input size -64, not from 1 to 8192"),
            std::string::npos);
}

TEST(Contract, DigitClassifierNeedsA28x28Input) {
  const auto wide = tiny_model({{"jitvision.json", R"({"task": "digits", "input": {"shape": [1, 1, 32, 32]},
      "normalize": {"scale": 255.0, "mean": [0.5], "std": [0.5]}, "labels": ["0", "1"]})"}});
  EXPECT_EQ(read_contract(wide).kind, ModelKind::Classifier);
  const auto message = model_error([&] { DigitClassifier(wide, torch::kCPU); });
  EXPECT_NE(message.find("the digit reader makes [N, 1, 28, 28]"), std::string::npos) << message;
}

TEST(ForwardIr, GraphIsInlinedAndCodeIsForwardsSource) {
  torch::jit::Module child("Child");
  child.define("def forward(self, x):\n  return x * 2\n");
  torch::jit::Module parent("Parent");
  parent.register_module("child", child);
  parent.define("def forward(self, x):\n  return self.child.forward(x) + 1\n");
  const auto ir = forward_ir(in_memory("parent.pt", parent));
  EXPECT_EQ(ir.graph.rfind("graph(", 0), 0u) << ir.graph;
  EXPECT_NE(ir.graph.find("aten::mul"), std::string::npos) << ir.graph;  // the child's body, inlined
  EXPECT_EQ(ir.graph.find("prim::CallMethod"), std::string::npos) << ir.graph;
  EXPECT_NE(ir.code.find("def forward(self"), std::string::npos) << ir.code;
  EXPECT_NE(ir.code.find(").forward(x"), std::string::npos) << ir.code;  // the code keeps the call
}

TEST(ForwardIr, NoForwardIsAModelError) {
  torch::jit::Module empty("Empty");
  const auto message = model_error([&] { forward_ir(in_memory("empty.pt", empty)); });
  EXPECT_NE(message.find("empty.pt has no forward method"), std::string::npos) << message;
}

}  // namespace
}  // namespace jitvision
