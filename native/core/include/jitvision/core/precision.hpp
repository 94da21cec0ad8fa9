#pragma once
// The precision a model runs in (--dtype), and how a loaded file gets there. One word per precision in both
// languages: "fp32", "bf16", "fp16" (python/jitvision/pt2.py DTYPES, the exporters' --dtype).
#include <optional>
#include <string>
#include <string_view>

#include <torch/types.h>

#include "jitvision/core/contract.hpp"
#include "jitvision/core/model_format.hpp"

namespace jitvision {

enum class Precision { Float32, BFloat16, Float16 };

// "fp32" | "bf16" | "fp16"; UsageError otherwise.
Precision parse_precision(const std::string& name);
std::string_view precision_name(Precision precision);
torch::ScalarType scalar_type(Precision precision);

// How a model runs in a precision: the dtype of its input and the one Model::to() converts it to (a .pt2 package:
// float32, its inner precision is compiled in), and the submodule kept in float32 (InferenceForm::fp32_head).
struct PrecisionPlan {
  torch::ScalarType dtype = torch::kFloat32;
  std::string fp32_head;
};

// What can run the model in `requested` (nullopt: the file's own precision: a .pt2 package's, else fp32):
// - TorchScript classifier: the whole model in that dtype (digits: accuracy measured in models/mnist.md);
// - TorchScript detector: fp32 and fp16 whole; bf16 with its body in bf16 and the Detect head (convolutions and box
//   decoding) in float32, which needs an export that records the head (DetectorContract::fp32_head), else ModelError
//   saying how to re-export it;
// - .pt2 package: its precision is compiled in; the input is float32; UsageError when `requested` differs.
// fp16 needs a CUDA device and bf16 on the CPU a CPU with native bf16 (`cpu_has_bf16`): DeviceError otherwise.
// Pure: the caller says whether this CPU has bf16 (plan_precision below asks /proc/cpuinfo).
PrecisionPlan plan_precision(const ModelContract& contract, ModelFormat format, std::optional<Precision> requested,
                             const torch::Device& device, bool cpu_has_bf16);
// The same for this machine's CPU (cpu_has_bf16 in device.hpp).
PrecisionPlan plan_precision(const ModelContract& contract, ModelFormat format, std::optional<Precision> requested,
                             const torch::Device& device);

}  // namespace jitvision
