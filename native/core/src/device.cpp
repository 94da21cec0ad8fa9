#include "jitvision/core/device.hpp"

#include <torch/cuda.h>
#include <torch/version.h>

#include <ATen/Parallel.h>

#include "jitvision/core/errors.hpp"

namespace jitvision {

DeviceChoice parse_device_choice(std::string_view text) {
  if (text == "auto") return DeviceChoice::Auto;
  if (text == "cpu") return DeviceChoice::Cpu;
  if (text == "cuda") return DeviceChoice::Cuda;
  throw UsageError("unknown device '" + std::string(text) + "' (use auto, cpu or cuda)");
}

torch::Device resolve_device(DeviceChoice choice) {
  const bool cuda = torch::cuda::is_available();
  switch (choice) {
    case DeviceChoice::Cpu:
      return torch::kCPU;
    case DeviceChoice::Auto:
      return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    case DeviceChoice::Cuda:
      if (!cuda) {
        // Loading onto CUDA without a GPU yields a misleading "driver version is insufficient"; say what is true.
        throw DeviceError(
            "--device cuda was requested but no CUDA GPU is available on this machine (use --device cpu or auto)");
      }
      return torch::Device(torch::kCUDA, 0);
  }
  return torch::kCPU;
}

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.libtorch_version = TORCH_VERSION;
  info.cuda_available = torch::cuda::is_available();
  info.cuda_device_count = info.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  info.cpu_threads = at::get_num_threads();
  return info;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace jitvision
