#pragma once
// Loading a model file (TorchScript or an AOTInductor .pt2 package) and the metadata it carries.
#include <memory>
#include <string>
#include <vector>

#include <torch/script.h>
#include <nlohmann/json.hpp>

#include "jitvision/core/inference_form.hpp"
#include "jitvision/core/model_format.hpp"

namespace jitvision {

// The one model interface: how a loaded file runs, whatever its format (TorchScriptModel in model.cpp, Pt2Model in
// pt2_model.cpp). Detector and DigitClassifier drive it; they never see the format.
class Model {
 public:
  virtual ~Model() = default;
  virtual ModelFormat format() const = 0;
  // Moves the model to `device` in `dtype` and puts it in `form` (inference_form.hpp: layout, freezing); call it once,
  // before the first forward. A .pt2 package is compiled for one device and takes float32 (its inner precision and
  // form are set at export, so `form` does not apply): DeviceError for another device, UsageError for another dtype.
  virtual void to(torch::Device device, torch::ScalarType dtype, const InferenceForm& form) = 0;
  // One forward pass. The outputs flattened one level: a tensor, or each element of a tuple or list in order (an
  // element that is not a tensor is an undefined tensor). ModelError when the input does not fit the model.
  virtual std::vector<torch::Tensor> forward(const torch::Tensor& input) = 0;
  // True when forward runs elsewhere (an inference server): nothing to warm up here, and each call is a request.
  virtual bool remote() const { return false; }
};

struct LoadedModel {
  std::string path;
  ModelFormat format = ModelFormat::TorchScript;
  std::shared_ptr<Model> model;  // runs the file, whatever its format
  // The TorchScript module (TorchScript files only: its graph and signature for `info`); empty for a .pt2.
  torch::jit::Module module;
  // Our metadata (extra file `jitvision.json`, or the .pt2 package's metadata entry of that name); null when absent.
  nlohmann::json metadata;
  // The official YOLOv5 export's metadata (extra file `config.txt`); null when absent.
  nlohmann::json official_config;
  std::int64_t parameter_count = 0;
};

struct LoadOptions {
  // Skip the model firewall (firewall.hpp): the file's code may call anything. The size checks still apply.
  // JITVISION_TRUST_MODEL=1 does the same. Meant for the --trust-model flag of each command. Needed for a .pt2.
  bool trust_model = false;
};

// Loads on the CPU, in eval mode, with gradients off, after the model firewall has read the archive without running
// it (check_model in firewall.hpp). The format is told from the content (model_format.hpp): a .pt2 package runs
// compiled native code the firewall cannot check, so it loads only when trusted (LoadOptions::trust_model or
// JITVISION_TRUST_MODEL=1). Throws ModelError with a message that says what the file is (missing, empty, not
// a zip archive, a foreign format, over a size limit, using operators outside the allow-list, a torch.save()
// checkpoint rather than TorchScript, an untrusted .pt2, corrupt metadata). read_contract() (contract.hpp) then says
// what the model does.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// The TorchScript IR of a model's forward method: `graph` with every submodule call inlined (Python's
// `module.inlined_graph`) and `code`, the TorchScript source of forward (Python's `module.code`).
struct ForwardIr {
  std::string graph;
  std::string code;
};
// Throws ModelError when the module has no forward method or the file is not TorchScript.
ForwardIr forward_ir(const LoadedModel& model);

// TorchScript's graph executor, process-wide; set it before the first forward. Profiling (LibTorch's default) runs
// the first call instrumented and optimises the graph on the second; Legacy optimises on the first; Unoptimized
// interprets the graph as loaded. docs/BENCHMARKS.md compares them (first calls and steady state); the app keeps
// Profiling and spends its two slow calls in the warm-up, before the first frame.
enum class GraphExecutor { Profiling, Legacy, Unoptimized };
void set_graph_executor(GraphExecutor executor);
// "profiling", "legacy" or "unoptimized"; UsageError otherwise.
GraphExecutor parse_graph_executor(const std::string& name);

// A loaded .pt2 package (pt2_model.cpp); load_model() calls it once the file is known to be one.
LoadedModel load_pt2(const std::string& path, const LoadOptions& options);

}  // namespace jitvision
