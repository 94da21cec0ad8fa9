#pragma once
#include <istream>
#include <string>
#include <string_view>

#include <torch/types.h>

namespace jitvision {

enum class DeviceChoice { Auto, Cpu, Cuda };

// "auto" | "cpu" | "cuda"; throws UsageError otherwise.
DeviceChoice parse_device_choice(std::string_view text);

// LibTorch's CUDA backend. The core links only LibTorch's CPU library (JITVISION_LAZY_CUDA, the default build) and
// loads libtorch_cuda.so, with RTLD_GLOBAL, only where a CUDA driver is installed: a GPU host behaves as if it were
// linked, a CPU host never maps the CUDA libraries. Runs once per process, before the first CUDA query (LibTorch
// remembers its CUDA hooks from that query on); resolve_device and runtime_info call it.
struct CudaBackend {
  bool loaded = false;
  std::string state;  // one line for --version: "loaded from PATH", "not loaded: WHY" or "linked"
};
const CudaBackend& load_cuda_backend();

// A compiled .pt2 package's library names libtorch.so, which the app does not link (it links only libtorch_cpu and
// c10): loads it, RTLD_GLOBAL, from beside libtorch_cpu.so before a package is opened. libtorch.so pulls in
// libtorch_cuda.so, so a .pt2 run costs the CUDA libraries' start-up time and memory that a TorchScript run avoids.
// Throws ModelError when it cannot be loaded.
void load_torch_library();

// auto -> CUDA when a GPU is usable, else CPU. Throws DeviceError when CUDA is asked for and absent.
torch::Device resolve_device(DeviceChoice choice);

struct RuntimeInfo {
  std::string libtorch_version;
  std::string cuda_backend;  // CudaBackend::state
  bool cuda_available = false;
  int cuda_device_count = 0;
  int cpu_threads = 0;
};
RuntimeInfo runtime_info();

// Whether this CPU computes bfloat16 natively (the avx512_bf16 or amx_bf16 flag in /proc/cpuinfo): elsewhere LibTorch
// emulates it, slower than FP32, so --dtype bf16 is refused there (plan_precision in precision.hpp).
bool cpu_has_bf16();
// Whether /proc/cpuinfo text (its flags lines) names avx512_bf16 or amx_bf16.
bool cpuinfo_has_bf16(std::istream& cpuinfo);

// Waits for queued GPU work so that timers measure finished work; a no-op on the CPU.
void synchronize(const torch::Device& device);

}  // namespace jitvision
