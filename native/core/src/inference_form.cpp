#include "jitvision/core/inference_form.hpp"

#include <torch/csrc/jit/codegen/onednn/interface.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include "jitvision/core/errors.hpp"

namespace jitvision {

Layout parse_layout(const std::string& name) {
  if (name == "contiguous") return Layout::Contiguous;
  if (name == "channels_last") return Layout::ChannelsLast;
  throw UsageError("unknown layout '" + name + "' (contiguous or channels_last)");
}

std::string layout_name(Layout layout) { return layout == Layout::ChannelsLast ? "channels_last" : "contiguous"; }

void convert_except_head(torch::jit::Module& module, torch::ScalarType dtype, const std::string& fp32_head) {
  bool found = false;
  for (const auto& child : module.named_modules()) found = found || child.name == fp32_head;
  if (!found || fp32_head.empty()) {
    throw ModelError("the model has no submodule '" + fp32_head + "' to keep in float32 (its metadata names it)");
  }
  const std::string prefix = fp32_head + ".";
  const auto convert = [&](const std::string& name, const torch::Tensor& t) {
    if (!t.is_floating_point()) return;
    const auto target = name.rfind(prefix, 0) == 0 ? torch::kFloat32 : dtype;
    if (t.scalar_type() != target) t.set_data(t.to(target));
  };
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters()) convert(p.name, p.value);
  for (const auto& b : module.named_buffers()) convert(b.name, b.value);
}

torch::jit::Module prepare_for_inference(torch::jit::Module module, const torch::Device& device,
                                         torch::ScalarType dtype, const InferenceForm& form) {
  module.eval();
  if (form.fp32_head.empty()) {
    module.to(device, dtype);
  } else {
    module.to(device);
    convert_except_head(module, dtype, form.fp32_head);
  }
  if (form.layout == Layout::ChannelsLast) {
    torch::NoGradGuard no_grad;
    for (auto p : module.parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  if (form.onednn_fusion) torch::jit::RegisterLlgaFuseGraph::setEnabled(true);
  // Freezing needs a module with a forward method to inline; files without one are run as they are.
  if (!form.freeze || !module.find_method("forward")) return module;
  // freeze() inlines the submodules' methods only while graph optimisation is on: with it off (bench
  // --jit-executor unoptimized) the frozen graph would still call the submodules it removed.
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  torch::jit::setGraphExecutorOptimize(true);
  torch::jit::Module frozen;
  try {
    frozen = torch::jit::freeze(module);
  } catch (const c10::Error&) {
    // Freezing is only an optimisation: a module it cannot handle (e.g. one that mutates its attributes in forward)
    // runs as loaded.
    frozen = module;
  }
  torch::jit::setGraphExecutorOptimize(optimize);
  return frozen;
}

}  // namespace jitvision
