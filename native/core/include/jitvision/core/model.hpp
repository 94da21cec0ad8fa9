#pragma once
// Loading a TorchScript archive and the metadata it carries.
#include <string>

#include <nlohmann/json.hpp>
#include <torch/script.h>

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

// Loads on the CPU, in eval mode, with gradients off. Throws ModelError with a message that says what the file is
// (missing, empty, not a zip archive, a torch.save() checkpoint rather than TorchScript, corrupt metadata).
LoadedModel load_model(const std::string& path);

// The metadata's "task" ("digits", "detect"), or "" when the model carries no metadata of ours.
std::string model_task(const LoadedModel& model);

// TorchScript's graph executor, process-wide; set it before the first forward. Profiling (LibTorch's default) runs
// the first call instrumented and optimises the graph on the second; Legacy optimises on the first; Unoptimized
// interprets the graph as loaded. docs/BENCHMARKS.md compares them (first calls and steady state); the app keeps
// Profiling and spends its two slow calls in the warm-up, before the first frame.
enum class GraphExecutor { Profiling, Legacy, Unoptimized };
void set_graph_executor(GraphExecutor executor);
// "profiling", "legacy" or "unoptimized"; UsageError otherwise.
GraphExecutor parse_graph_executor(const std::string& name);

}  // namespace jitvision
