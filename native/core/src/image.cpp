#include "jitvision/core/image.hpp"

#include "jitvision/core/errors.hpp"

namespace jitvision {

torch::Tensor as_tensor(const ImageView& image) {
  if (image.empty()) throw InputError("empty image");
  const auto c = static_cast<std::int64_t>(image.channels);
  return torch::from_blob(const_cast<std::uint8_t*>(image.data), {image.height, image.width, c},
                          {static_cast<std::int64_t>(image.row_stride), c, 1}, torch::kUInt8);
}

}  // namespace jitvision
