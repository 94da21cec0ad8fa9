#pragma once
// Official YOLOv5 TorchScript exports (config.txt, no jitvision.json). Their config.txt says neither whether the file
// was exported with --dynamic nor whether its weights are FP16: a probe forward and the weights themselves do.
#include <cstdint>

#include <torch/types.h>

#include "jitvision/core/contract.hpp"
#include "jitvision/core/model.hpp"

namespace jitvision {

// The probe input, in strides: non-square, so a fixed export (its grid traced at 640x640) fails or gives the wrong
// number of rows. For stride 32: 64x96.
inline constexpr std::int64_t kProbeStridesH = 2, kProbeStridesW = 3;

// The dtype of the file's floating-point weights (TorchScript; a .pt2 takes float32): kHalf for an FP16 export.
torch::ScalarType stored_dtype(const LoadedModel& model);

// `contract` with dynamic = true and rect letterbox when the model (already on `device` in `dtype`) runs at the probe
// size and returns the rows a YOLOv5 detector gives there; else `contract` unchanged. Only for official exports:
// ours say what they are in jitvision.json.
DetectorContract probe_official(Model& model, DetectorContract contract, torch::Device device, torch::ScalarType dtype);

// For commands that need the contract but no Detector (info, bench): probes an official detector's model on the CPU
// in float32 (converting an FP16 model in place) and updates `contract.detector`; other models are left alone.
void probe_contract(LoadedModel& model, ModelContract& contract);

}  // namespace jitvision
