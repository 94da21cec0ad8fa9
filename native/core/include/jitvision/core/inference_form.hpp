#pragma once
// The form a TorchScript module runs in: its memory layout, frozen or not, and oneDNN graph fusion. Measured in
// docs/BENCHMARKS.md ("Inference form"); the defaults are what won there.
#include <string>

#include <torch/script.h>

namespace jitvision {

enum class Layout { Contiguous, ChannelsLast };

struct InferenceForm {
  // ChannelsLast: 4-D weights in NHWC, so oneDNN's convolutions run NHWC end to end without reordering each layer.
  Layout layout = Layout::ChannelsLast;
  // torch::jit::freeze: weights become constants, batch norms fold into the convolutions before them, attribute
  // lookups disappear from the graph.
  bool freeze = true;
  // oneDNN graph fusion (torch.jit.enable_onednn_fusion), process-wide; off by default: it did not win.
  bool onednn_fusion = false;
  // A submodule (qualified name, e.g. "model.24") that stays float32 whatever dtype the rest is converted to: the
  // Detect head under --dtype bf16 (precision.hpp). "": the whole module in one dtype.
  std::string fp32_head;
};

// The module as it was saved: contiguous, not frozen (the MNIST classifier, and probe forwards before the real form).
inline const InferenceForm kFormAsSaved{Layout::Contiguous, false, false, ""};

// Converts the floating-point parameters and buffers of `module` to `dtype`, except those of the submodule named
// `fp32_head`, which become float32 (its own tensors are never rounded through `dtype`). ModelError when the module
// has no submodule of that name.
void convert_except_head(torch::jit::Module& module, torch::ScalarType dtype, const std::string& fp32_head);

// "contiguous" | "channels_last"; UsageError otherwise.
Layout parse_layout(const std::string& name);
std::string layout_name(Layout layout);

// Moves the module to device and dtype (all but form.fp32_head, see convert_except_head) and puts it into `form`. The
// result has no parameters left when frozen, so a later `.to()` does nothing: choose the device and dtype here.
// Numerics: channels_last and folding change the float summation order only (boxes within ~0.001 px of the contiguous
// form).
torch::jit::Module prepare_for_inference(torch::jit::Module module, const torch::Device& device,
                                         torch::ScalarType dtype, const InferenceForm& form = {});

}  // namespace jitvision
