#include "jitvision/core/device.hpp"

#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <ATen/Parallel.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

// libtorch_cuda.so and libtorch.so sit beside libtorch_cpu.so in every LibTorch (wheel or archive): find the latter
// from one of its functions.
std::string torch_library_path(const char* name) {
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &where) == 0 || where.dli_fname == nullptr) return "";
  return (std::filesystem::path(where.dli_fname).parent_path() / name).string();
}

std::string torch_cuda_library_path() { return torch_library_path("libtorch_cuda.so"); }

CudaBackend open_cuda_backend() {
  const std::string path = torch_cuda_library_path();
  if (!path.empty() && dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD) != nullptr) return {true, "linked"};
  // Without a driver no GPU can be used: skip the ~400 MB of CUDA libraries (and their start-up time) altogether.
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (driver == nullptr) return {false, "not loaded: no CUDA driver (libcuda.so.1) on this machine"};
  dlclose(driver);
  if (path.empty() || !std::filesystem::exists(path))
    return {false, "not loaded: this LibTorch has no libtorch_cuda.so"};
  // RTLD_GLOBAL: its static initialisers register the CUDA kernels and hooks with libtorch_cpu, as if linked.
  if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* why = dlerror();
    return {false, "not loaded: " + path + " failed to load (" + (why ? why : "unknown reason") + ")"};
  }
  return {true, "loaded from " + path};
}

}  // namespace

void load_torch_library() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    const std::string path = torch_library_path("libtorch.so");
    if (path.empty() || dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char* why = path.empty() ? nullptr : dlerror();
      failure = "LibTorch's libtorch.so (" + (path.empty() ? std::string("not found") : path) +
                ") failed to load: " + (why ? why : "unknown reason");
    }
  });
  if (!failure.empty()) throw ModelError(failure);
}

const CudaBackend& load_cuda_backend() {
  static std::once_flag once;
  static CudaBackend backend;
  std::call_once(once, [] { backend = open_cuda_backend(); });
  return backend;
}

DeviceChoice parse_device_choice(std::string_view text) {
  if (text == "auto") return DeviceChoice::Auto;
  if (text == "cpu") return DeviceChoice::Cpu;
  if (text == "cuda") return DeviceChoice::Cuda;
  throw UsageError("unknown device '" + std::string(text) + "' (use auto, cpu or cuda)");
}

torch::Device resolve_device(DeviceChoice choice) {
  const bool cuda = choice != DeviceChoice::Cpu && load_cuda_backend().loaded && torch::cuda::is_available();
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
  info.cuda_backend = load_cuda_backend().state;
  info.cuda_available = load_cuda_backend().loaded && torch::cuda::is_available();
  info.cuda_device_count = info.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  info.cpu_threads = at::get_num_threads();
  return info;
}

bool cpuinfo_has_bf16(std::istream& cpuinfo) {
  for (std::string word; cpuinfo >> word;) {
    if (word == "avx512_bf16" || word == "amx_bf16") return true;
  }
  return false;
}

bool cpu_has_bf16() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  return cpuinfo_has_bf16(cpuinfo);
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace jitvision
