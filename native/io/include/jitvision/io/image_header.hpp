#pragma once
// Image dimensions read from a file's header, before anything is decoded: a 30000x30000 PNG is a few kilobytes on
// disk and 2.7 GB once decoded, so its size must be known (and refused) first, as Pillow's decompression-bomb guard
// does.
#include <cstdint>
#include <optional>
#include <span>

namespace jitvision::io {

struct ImageSize {
  std::int64_t width = 0;
  std::int64_t height = 0;
  std::int64_t pixels() const { return width * height; }
  bool operator==(const ImageSize&) const = default;
};

// The width and height a PNG, JPEG, BMP, WebP, PNM (P1-P7) or TIFF header declares, from the file's bytes (its
// format is told by its signature, not its name). nullopt for other formats and for headers that cannot be parsed:
// the decoder then decides (OpenCV refuses images over 2^30 pixels by itself).
std::optional<ImageSize> image_header_size(std::span<const std::uint8_t> bytes);

// The default of --max-pixels: 100 megapixels, like Pillow's bomb guard (about 89 megapixels).
constexpr std::int64_t kDefaultMaxPixels = 100'000'000;

// The largest image file read for a pixel limit: 8 bytes per pixel (16-bit RGBA, uncompressed) plus 1 MiB of
// headers and metadata. A larger file is refused without being read.
constexpr std::int64_t max_image_file_bytes(std::int64_t max_pixels) {
  return max_pixels * 8 + (std::int64_t{1} << 20);
}

}  // namespace jitvision::io
