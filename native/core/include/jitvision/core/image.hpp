#pragma once
// A borrowed view of an 8-bit image in host memory (row-major, interleaved channels, BGR order for colour), so the
// io layer can hand frames to the core without either side knowing the other's types.
#include <cstddef>
#include <cstdint>

#include <torch/types.h>

namespace jitvision {

struct ImageView {
  const std::uint8_t* data = nullptr;
  int height = 0;
  int width = 0;
  int channels = 0;            // 1 (grey), 3 (BGR) or 4 (BGRA)
  std::size_t row_stride = 0;  // bytes between rows

  bool empty() const { return data == nullptr || height <= 0 || width <= 0; }
};

// Wraps the view as an HxWxC uint8 CPU tensor without copying (the view must outlive the tensor).
torch::Tensor as_tensor(const ImageView& image);

}  // namespace jitvision
