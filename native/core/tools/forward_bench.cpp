// jitvision_forward_bench: forward-only latency of a TorchScript model with the core alone (no OpenCV), for machines
// where only LibTorch is available, e.g. a bare GPU host (tools/gpu-check). For each dtype and batch it prints one
// JSON object: the median/p90/min forward in the app's inference form, and the largest difference of the output
// rows from FP32 on the CPU (the reference).
//
//   jitvision_forward_bench MODEL [--device cpu|cuda] [--dtypes fp32,fp16] [--batches 1,8] [--size 384x640]
//                                 [--warmup 5] [--iters 30]
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/forward_timing.hpp"
#include "jitvision/core/inference_form.hpp"
#include "jitvision/core/model.hpp"

namespace jitvision {
namespace {

struct Options {
  std::string model, device = "cuda", dtypes = "fp32,fp16", batches = "1,8", size = "384x640";
  int warmup = 5, iters = 30;
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, sep);) parts.push_back(part);
  return parts;
}

int to_int(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    const int v = std::stoi(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(what + " must be a non-negative integer, got '" + text + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--device")
      o.device = value();
    else if (arg == "--dtypes")
      o.dtypes = value();
    else if (arg == "--batches")
      o.batches = value();
    else if (arg == "--size")
      o.size = value();
    else if (arg == "--warmup")
      o.warmup = to_int(value(), arg);
    else if (arg == "--iters")
      o.iters = std::max(1, to_int(value(), arg));
    else if (!arg.empty() && arg[0] != '-' && o.model.empty())
      o.model = arg;
    else
      throw UsageError("unknown argument '" + arg + "' (see the comment at the top of forward_bench.cpp)");
  }
  if (o.model.empty()) throw UsageError("usage: jitvision_forward_bench MODEL [--device cpu|cuda] [--dtypes ...]");
  return o;
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "fp16") return torch::kHalf;
  if (name == "bf16") return torch::kBFloat16;
  throw UsageError("unknown dtype '" + name + "' (fp32, fp16 or bf16)");
}

torch::Tensor first_tensor(const c10::IValue& out) {
  if (out.isTensor()) return out.toTensor();
  if (out.isTuple()) return first_tensor(out.toTupleRef().elements()[0]);
  if (out.isList()) return first_tensor(out.toList().get(0));
  throw ModelError("the model returned neither a tensor nor a tuple or list of tensors");
}

// The rows of `module` on a fixed input, as FP32 on the CPU.
torch::Tensor rows_on(torch::jit::Module& module, const torch::Tensor& input, const torch::Device& device,
                      torch::ScalarType dtype) {
  torch::InferenceMode guard;
  return first_tensor(module.forward({input.to(device, dtype)})).to(torch::kCPU, torch::kFloat32);
}

int run(const Options& o) {
  const auto device = resolve_device(parse_device_choice(o.device));
  const auto hw = split(o.size, 'x');
  if (hw.size() != 2) throw UsageError("--size must look like 384x640");
  const std::int64_t h = to_int(hw[0], "--size"), w = to_int(hw[1], "--size");
  const auto model = load_model(o.model);
  for (const auto& batch_text : split(o.batches, ',')) {
    const std::int64_t batch = to_int(batch_text, "--batches");
    const auto input = torch::rand({batch, 3, h, w}, torch::TensorOptions().dtype(torch::kFloat32));
    auto reference_module = prepare_for_inference(model.module.clone(), torch::kCPU, torch::kFloat32);
    const auto reference = rows_on(reference_module, input, torch::kCPU, torch::kFloat32);
    for (const auto& dtype_name : split(o.dtypes, ',')) {
      const auto dtype = parse_dtype(dtype_name);
      auto module = prepare_for_inference(model.module.clone(), device, dtype);
      const auto t = time_forward([&](const torch::Tensor& x) { module.forward({x}); }, {batch, 3, h, w}, device, dtype,
                                  o.warmup, o.iters);
      const double diff = (rows_on(module, input, device, dtype) - reference).abs().max().item<double>();
      const nlohmann::json row{{"model", o.model},
                               {"device", device.str()},
                               {"dtype", dtype_name},
                               {"batch", batch},
                               {"shape", {batch, 3, h, w}},
                               {"first_call_ms", t.first_ms},
                               {"median_ms", t.forward.median()},
                               {"p90_ms", t.forward.percentile(90)},
                               {"min_ms", t.forward.min()},
                               {"per_image_ms", t.forward.median() / static_cast<double>(batch)},
                               {"max_abs_diff_vs_cpu_fp32", diff}};
      std::cout << row.dump() << std::endl;
    }
  }
  return 0;
}

}  // namespace
}  // namespace jitvision

int main(int argc, char** argv) {
  try {
    return jitvision::run(jitvision::parse(argc, argv));
  } catch (const jitvision::Error& e) {
    std::cerr << "jitvision_forward_bench: error: " << e.what() << std::endl;
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    std::cerr << "jitvision_forward_bench: error: " << e.what_without_backtrace() << std::endl;
    return 1;
  }
}
