#include "jitvision/core/tensor_bounds.hpp"

#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

void check_tensor(const std::string& path, const std::string& kind, const std::string& name, const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return;
  const auto element = static_cast<std::int64_t>(t.element_size());
  const auto stored = element > 0 ? static_cast<std::int64_t>(t.storage().nbytes()) / element : 0;
  if (t.numel() > stored) {
    throw ModelError("model file " + path + ": " + kind + " " + name + " declares " + std::to_string(t.numel()) +
                     " elements (shape " + c10::str(t.sizes()) + ", stride " + c10::str(t.strides()) +
                     ") over a storage of " + std::to_string(stored) + "; refused before it is used");
  }
}

}  // namespace

void check_tensor_sizes(const torch::jit::Module& module, const std::string& path) {
  for (const auto& p : module.named_parameters(/*recurse=*/true)) check_tensor(path, "parameter", p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) check_tensor(path, "buffer", b.name, b.value);
}

}  // namespace jitvision
