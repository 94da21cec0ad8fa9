#pragma once
// Declared tensor sizes checked against the storage a model file really holds. A TorchScript archive stores each
// tensor as a storage record plus a view (size, stride, offset); a stride-0 view lets a 2 KB file declare gigabytes of
// weights, which become real the moment the model is moved to another device or precision (.to(kHalf) copies
// every element). load_model() runs this right after torch::jit::load, before anything else touches the weights.
#include <string>

#include <torch/script.h>

namespace jitvision {

// Throws ModelError naming the first parameter or buffer (recursively) whose view declares more elements than its
// storage holds (each stored element may back at most one element of the tensor, as in a checkpoint read by
// `yolov5 import`). The same rule as python/jitvision/model_file.py.
void check_tensor_sizes(const torch::jit::Module& module, const std::string& path);

}  // namespace jitvision
