#include "jitvision/core/forward_timing.hpp"

#include "jitvision/core/device.hpp"

namespace jitvision {

ForwardTimes time_forward(const std::function<void(const torch::Tensor&)>& forward,
                          const std::vector<std::int64_t>& shape, const torch::Device& device, torch::ScalarType dtype,
                          int warmup, int iters) {
  torch::InferenceMode guard;
  const auto input = torch::rand(shape, torch::TensorOptions(device).dtype(dtype));
  const auto run_once = [&] {
    Stopwatch sw;
    forward(input);
    synchronize(device);
    return sw.elapsed_ms();
  };
  ForwardTimes t;
  t.first_ms = run_once();
  for (int i = 0; i < warmup; ++i) t.warmup_ms.push_back(run_once());
  for (int i = 0; i < iters; ++i) t.forward.add(run_once());
  return t;
}

}  // namespace jitvision
