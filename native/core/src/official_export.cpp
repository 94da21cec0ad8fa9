#include "jitvision/core/official_export.hpp"

namespace jitvision {
namespace {

// Rows a YOLOv5 head gives at h x w: anchors per cell times the cells of every level (stride, stride/2, ...).
bool plausible_rows(std::int64_t rows, std::int64_t h, std::int64_t w, std::int64_t stride) {
  for (int levels = 3; levels <= 4; ++levels) {
    std::int64_t cells = 0;
    for (int k = 0; k < levels; ++k) {
      const std::int64_t s = stride >> k;
      if (s <= 0) break;
      cells += (h / s) * (w / s);
    }
    if (cells > 0 && rows % cells == 0 && rows / cells >= 1 && rows / cells <= 9) return true;
  }
  return false;
}

}  // namespace

torch::ScalarType stored_dtype(const LoadedModel& model) {
  if (model.format != ModelFormat::TorchScript) return torch::kFloat32;
  for (const auto& p : model.module.parameters()) {
    if (p.is_floating_point()) return p.scalar_type();
  }
  return torch::kFloat32;
}

DetectorContract probe_official(Model& model, DetectorContract contract, torch::Device device,
                                torch::ScalarType dtype) {
  if (contract.origin != "ultralytics" || contract.dynamic) return contract;
  const std::int64_t h = kProbeStridesH * contract.stride, w = kProbeStridesW * contract.stride;
  try {
    torch::InferenceMode guard;
    const auto outputs = model.forward(torch::zeros({1, 3, h, w}, torch::TensorOptions(device).dtype(dtype)));
    const auto& rows = outputs.empty() ? torch::Tensor() : outputs.front();
    const auto columns = static_cast<std::int64_t>(contract.names.size()) + 5;
    if (!rows.defined() || rows.dim() != 3 || rows.size(0) != 1 || rows.size(2) != columns ||
        !plausible_rows(rows.size(1), h, w, contract.stride)) {
      return contract;
    }
  } catch (const std::exception&) {
    return contract;  // a fixed export's traced grid does not fit the probe: that is the answer
  }
  contract.dynamic = true;
  contract.letterbox = LetterboxMode::Rect;
  return contract;
}

void probe_contract(LoadedModel& model, ModelContract& contract) {
  if (!contract.detector || contract.detector->origin != "ultralytics") return;
  model.model->to(torch::kCPU, torch::kFloat32, kFormAsSaved);
  contract.detector = probe_official(*model.model, *contract.detector, torch::kCPU, torch::kFloat32);
}

}  // namespace jitvision
