#include "jitvision/core/model.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/python_print.h>

#include <filesystem>
#include <fstream>

#include "jitvision/core/errors.hpp"
#include "jitvision/core/firewall.hpp"
#include "jitvision/core/tensor_bounds.hpp"

namespace jitvision {
namespace {

namespace fs = std::filesystem;

// Says why torch::jit::load rejected the file, in terms a user can act on.
std::string diagnose_unloadable(const std::string& path, const std::string& torch_message) {
  try {
    // torch.save() checkpoints and other formats were named by model_format() already.
    caffe2::serialize::PyTorchStreamReader reader(path);
    return "model file " + path + " is a PyTorch archive that LibTorch cannot load as TorchScript: " + torch_message;
  } catch (const c10::Error&) {
    return "model file " + path + " is not a TorchScript archive (not a readable zip file; truncated or corrupt?)";
  }
}

nlohmann::json parse_json_extra(const std::string& path, const std::string& name, const std::string& text) {
  if (text.empty()) return nullptr;
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("model file " + path + " has corrupt metadata in extra/" + name + ": " + e.what());
  }
}

// A TorchScript module behind the Model interface.
class TorchScriptModel final : public Model {
 public:
  explicit TorchScriptModel(torch::jit::Module module) : module_(std::move(module)) {}
  ModelFormat format() const override { return ModelFormat::TorchScript; }
  void to(torch::Device device, torch::ScalarType dtype, const InferenceForm& form) override {
    module_ = prepare_for_inference(module_, device, dtype, form);
  }
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override {
    const auto out = module_.forward({input});
    if (out.isTensor()) return {out.toTensor()};
    std::vector<torch::Tensor> tensors;
    if (out.isTuple() || out.isList()) {
      for (const auto& item : out.isTuple() ? out.toTupleRef().elements().vec() : out.toList().vec()) {
        tensors.push_back(item.isTensor() ? item.toTensor() : torch::Tensor());
      }
    }
    return tensors;
  }

 private:
  torch::jit::Module module_;
};

}  // namespace

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw ModelError("model file " + path + " does not exist");
  if (fs::is_directory(path, ec)) throw ModelError("model file " + path + " is a directory");
  if (fs::file_size(path, ec) == 0) throw ModelError("model file " + path + " is empty (0 bytes)");
  if (!std::ifstream(path).good()) throw ModelError("model file " + path + " cannot be opened (permissions?)");
  if (model_format(path) == ModelFormat::Pt2) return load_pt2(path, options);
  check_model(path, options.trust_model);  // nothing in the file runs before this

  torch::jit::ExtraFilesMap extra{{"jitvision.json", ""}, {"config.txt", ""}};
  LoadedModel model;
  model.path = path;
  try {
    model.module = torch::jit::load(path, torch::Device(torch::kCPU), extra);
  } catch (const c10::Error& e) {
    throw ModelError(diagnose_unloadable(path, e.what_without_backtrace()));
  }
  check_tensor_sizes(model.module, path);
  model.module.eval();
  model.metadata = parse_json_extra(path, "jitvision.json", extra["jitvision.json"]);
  model.official_config = parse_json_extra(path, "config.txt", extra["config.txt"]);
  for (const auto& p : model.module.parameters()) model.parameter_count += p.numel();
  model.model = std::make_shared<TorchScriptModel>(model.module);
  return model;
}

ForwardIr forward_ir(const LoadedModel& model) {
  if (model.format != ModelFormat::TorchScript) {
    throw ModelError("model file " + model.path + " is a ." + std::string(to_string(model.format)) +
                     " package of compiled code: it has no TorchScript graph to print");
  }
  const auto forward = model.module.find_method("forward");
  if (!forward) throw ModelError("model file " + model.path + " has no forward method: there is no graph to print");
  auto graph = forward->graph()->copy();
  torch::jit::Inline(*graph);
  std::vector<c10::IValue> constants;
  torch::jit::PrintDepsTable deps;
  torch::jit::PythonPrint printer(constants, deps);
  printer.printMethod(forward->function());
  return {graph->toString(), printer.str()};
}

void set_graph_executor(GraphExecutor executor) {
  torch::jit::getExecutorMode() = executor != GraphExecutor::Legacy;
  torch::jit::setGraphExecutorOptimize(executor != GraphExecutor::Unoptimized);
}

GraphExecutor parse_graph_executor(const std::string& name) {
  if (name == "profiling") return GraphExecutor::Profiling;
  if (name == "legacy") return GraphExecutor::Legacy;
  if (name == "unoptimized") return GraphExecutor::Unoptimized;
  throw UsageError("unknown graph executor '" + name + "' (profiling, legacy or unoptimized)");
}

}  // namespace jitvision
