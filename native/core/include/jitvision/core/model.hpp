#pragma once
// Loading a TorchScript archive and the metadata it carries.
#include <string>

#include <torch/script.h>
#include <nlohmann/json.hpp>

namespace jitvision {

struct LoadedModel {
  std::string path;
  torch::jit::Module module;
  // Our metadata (extra file `jitvision.json`); null when the archive has none.
  nlohmann::json metadata;
  // The official YOLOv5 export's metadata (extra file `config.txt`); null when absent.
  nlohmann::json official_config;
  std::int64_t parameter_count = 0;
};

struct LoadOptions {
  // Skip the model firewall (firewall.hpp): the file's code may call anything. The size checks still apply.
  // JITVISION_TRUST_MODEL=1 does the same. Meant for the --trust-model flag of each command.
  bool trust_model = false;
};

// Loads on the CPU, in eval mode, with gradients off, after the model firewall has read the archive without running
// it (check_model in firewall.hpp). Throws ModelError with a message that says what the file is (missing, empty, not
// a zip archive, over a size limit, using operators outside the allow-list, a torch.save() checkpoint rather than
// TorchScript, corrupt metadata). read_contract() (contract.hpp) then says what the model does.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// The TorchScript IR of a model's forward method: `graph` with every submodule call inlined (Python's
// `module.inlined_graph`) and `code`, the TorchScript source of forward (Python's `module.code`).
struct ForwardIr {
  std::string graph;
  std::string code;
};
// Throws ModelError when the module has no forward method.
ForwardIr forward_ir(const LoadedModel& model);

// TorchScript's graph executor, process-wide; set it before the first forward. Profiling (LibTorch's default) runs
// the first call instrumented and optimises the graph on the second; Legacy optimises on the first; Unoptimized
// interprets the graph as loaded. docs/BENCHMARKS.md compares them (first calls and steady state); the app keeps
// Profiling and spends its two slow calls in the warm-up, before the first frame.
enum class GraphExecutor { Profiling, Legacy, Unoptimized };
void set_graph_executor(GraphExecutor executor);
// "profiling", "legacy" or "unoptimized"; UsageError otherwise.
GraphExecutor parse_graph_executor(const std::string& name);

}  // namespace jitvision
