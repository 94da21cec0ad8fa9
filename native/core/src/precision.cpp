#include "jitvision/core/precision.hpp"

#include <array>
#include <utility>

#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

constexpr std::array<std::pair<Precision, std::string_view>, 3> kPrecisionNames{{
    {Precision::Float32, "fp32"},
    {Precision::BFloat16, "bf16"},
    {Precision::Float16, "fp16"},
}};

void check_device(Precision precision, const torch::Device& device, bool cpu_has_bf16) {
  if (precision == Precision::Float16 && !device.is_cuda()) {
    throw DeviceError(
        "--dtype fp16 needs a CUDA device (FP16 convolutions are not supported on the CPU): use "
        "--dtype bf16 on a CPU with AVX512-BF16 or AMX");
  }
  if (precision == Precision::BFloat16 && !device.is_cuda() && !cpu_has_bf16) {
    throw DeviceError("bfloat16 needs a CPU with AVX512-BF16 or AMX (no avx512_bf16/amx_bf16 flag in /proc/cpuinfo)");
  }
}

// A TorchScript detector: bf16 needs the head split its export recorded.
PrecisionPlan detector_plan(const ModelContract& contract, Precision precision) {
  const auto dtype = scalar_type(precision);
  if (precision != Precision::BFloat16) return {dtype, ""};
  const auto& head = contract.as_detector().fp32_head;
  if (head.empty()) {
    throw ModelError("model file " + contract.path +
                     " cannot run in bf16: its export does not keep the Detect head in float32 (no "
                     "\"mixed_precision\" in its metadata; an official export or one made before it existed): "
                     "export it again with `python -m jitvision yolov5 import CHECKPOINT.pt --out FILE`, or "
                     "re-export this file with `python -m jitvision yolov5 import " +
                     contract.path + " --out FILE` if jitvision made it");
  }
  return {dtype, head};
}

Precision package_precision(const ModelContract& contract) {
  const std::string name = contract.package_dtype.empty() ? "fp32" : contract.package_dtype;
  for (const auto& [precision, text] : kPrecisionNames) {
    if (text == name) return precision;
  }
  throw ModelError("model file " + contract.path + " is a .pt2 package whose metadata names dtype '" +
                   contract.package_dtype + "', not fp32, bf16 or fp16");
}

}  // namespace

Precision parse_precision(const std::string& name) {
  for (const auto& [precision, text] : kPrecisionNames) {
    if (text == name) return precision;
  }
  throw UsageError("unknown dtype '" + name + "' (fp32, bf16 or fp16)");
}

std::string_view precision_name(Precision precision) {
  for (const auto& [p, text] : kPrecisionNames) {
    if (p == precision) return text;
  }
  throw std::logic_error("Precision without a name");
}

torch::ScalarType scalar_type(Precision precision) {
  switch (precision) {
    case Precision::BFloat16:
      return torch::kBFloat16;
    case Precision::Float16:
      return torch::kHalf;
    case Precision::Float32:
      break;
  }
  return torch::kFloat32;
}

PrecisionPlan plan_precision(const ModelContract& contract, ModelFormat format, std::optional<Precision> requested,
                             const torch::Device& device, bool cpu_has_bf16) {
  if (format == ModelFormat::Pt2) {
    const auto compiled = package_precision(contract);
    if (requested && *requested != compiled) {
      throw UsageError("model file " + contract.path + " is a .pt2 package compiled for " +
                       std::string(precision_name(compiled)) + ": its precision is fixed at export, so --dtype " +
                       std::string(precision_name(*requested)) + " does not apply (export it again with --dtype " +
                       std::string(precision_name(*requested)) + ", or run it with --dtype " +
                       std::string(precision_name(compiled)) + ")");
    }
    check_device(compiled, device, cpu_has_bf16);
    return {};  // a package takes float32 whatever runs inside it
  }
  const auto precision = requested.value_or(Precision::Float32);
  check_device(precision, device, cpu_has_bf16);
  if (format == ModelFormat::Triton) {
    if (precision != Precision::Float32) {
      throw UsageError("--dtype " + std::string(precision_name(precision)) +
                       " applies to a model file; a --server model runs in the precision the server gives it");
    }
    return {};
  }
  if (contract.kind == ModelKind::Detector) return detector_plan(contract, precision);
  return {scalar_type(precision), ""};
}

PrecisionPlan plan_precision(const ModelContract& contract, ModelFormat format, std::optional<Precision> requested,
                             const torch::Device& device) {
  return plan_precision(contract, format, requested, device, cpu_has_bf16());
}

}  // namespace jitvision
