#pragma once
// Forward-only latency of a model, as `jitvision bench` and tools/gpu-check measure it.
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/script.h>

#include "jitvision/core/timing.hpp"

namespace jitvision {

struct ForwardTimes {
  double first_ms = 0;
  std::vector<double> warmup_ms;  // each warm-up call: how fast the executor reaches its steady state
  TimingStats forward;
};

// `forward` (a Model's or a module's) on a random input of `shape` on `device` in `dtype` (the model must already be
// there, e.g. from Model::to or prepare_for_inference): the first call, `warmup` calls, then `iters` timed calls;
// every clock read waits for the GPU to finish.
ForwardTimes time_forward(const std::function<void(const torch::Tensor&)>& forward,
                          const std::vector<std::int64_t>& shape, const torch::Device& device, torch::ScalarType dtype,
                          int warmup, int iters);

}  // namespace jitvision
