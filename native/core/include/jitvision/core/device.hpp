#pragma once
#include <string>
#include <string_view>

#include <torch/types.h>

namespace jitvision {

enum class DeviceChoice { Auto, Cpu, Cuda };

// "auto" | "cpu" | "cuda"; throws UsageError otherwise.
DeviceChoice parse_device_choice(std::string_view text);

// auto -> CUDA when a GPU is usable, else CPU. Throws DeviceError when CUDA is asked for and absent.
torch::Device resolve_device(DeviceChoice choice);

struct RuntimeInfo {
  std::string libtorch_version;
  bool cuda_available = false;
  int cuda_device_count = 0;
  int cpu_threads = 0;
};
RuntimeInfo runtime_info();

// Waits for queued GPU work so that timers measure finished work; a no-op on the CPU.
void synchronize(const torch::Device& device);

}  // namespace jitvision
