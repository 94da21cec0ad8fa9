#include "jitvision/io/image_header.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace jitvision::io {
namespace {

using Bytes = std::span<const std::uint8_t>;

// Unsigned integers of `n` bytes at `at`, big- or little-endian; nullopt past the end.
std::optional<std::uint32_t> read_uint(Bytes b, std::size_t at, int n, bool big_endian) {
  if (at > b.size() || b.size() - at < static_cast<std::size_t>(n)) return std::nullopt;
  std::uint32_t v = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint32_t byte = b[at + static_cast<std::size_t>(big_endian ? i : n - 1 - i)];
    v = (v << 8) | byte;
  }
  return v;
}

bool starts_with(Bytes b, std::size_t at, std::string_view text) {
  return at <= b.size() && b.size() - at >= text.size() && std::memcmp(b.data() + at, text.data(), text.size()) == 0;
}

std::optional<ImageSize> size_of(std::optional<std::uint32_t> w, std::optional<std::uint32_t> h) {
  if (!w || !h) return std::nullopt;
  return ImageSize{*w, *h};
}

std::optional<ImageSize> png_size(Bytes b) {
  if (!starts_with(b, 12, "IHDR")) return std::nullopt;
  return size_of(read_uint(b, 16, 4, true), read_uint(b, 20, 4, true));
}

// Markers without a length: restart markers RST0-RST7 and TEM.
bool standalone_marker(std::uint8_t marker) { return (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01; }

// Start-of-frame markers: SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC).
bool frame_marker(std::uint8_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// The first start-of-frame segment holds the size; it comes before the scan.
std::optional<ImageSize> jpeg_size(Bytes b) {
  std::size_t i = 2;
  while (i + 1 < b.size()) {
    if (b[i] != 0xFF) return std::nullopt;
    const std::uint8_t marker = b[i + 1];
    if (marker == 0xFF || standalone_marker(marker)) {  // a fill byte, or a marker without a length
      i += marker == 0xFF ? 1 : 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // end of image, start of scan: no frame header
    const auto length = read_uint(b, i + 2, 2, true);
    if (!length || *length < 2) return std::nullopt;
    if (frame_marker(marker)) return size_of(read_uint(b, i + 7, 2, true), read_uint(b, i + 5, 2, true));
    i += 2 + *length;
  }
  return std::nullopt;
}

std::optional<ImageSize> bmp_size(Bytes b) {
  const auto header = read_uint(b, 14, 4, false);
  if (!header) return std::nullopt;
  if (*header == 12) return size_of(read_uint(b, 18, 2, false), read_uint(b, 20, 2, false));  // OS/2 1.x
  const auto w = read_uint(b, 18, 4, false), h = read_uint(b, 22, 4, false);
  if (!w || !h) return std::nullopt;
  // Signed: a negative height is a top-down bitmap.
  const auto magnitude = [](std::uint32_t v) {
    return static_cast<std::int64_t>(std::abs(static_cast<std::int32_t>(v)));
  };
  return ImageSize{magnitude(*w), magnitude(*h)};
}

std::optional<ImageSize> webp_size(Bytes b) {
  if (starts_with(b, 12, "VP8X")) {  // extended: canvas size - 1, 24 bits each
    const auto w = read_uint(b, 24, 3, false), h = read_uint(b, 27, 3, false);
    if (!w || !h) return std::nullopt;
    return ImageSize{std::int64_t{*w} + 1, std::int64_t{*h} + 1};
  }
  if (starts_with(b, 12, "VP8L")) {  // lossless: signature 0x2F, then 14 bits width - 1, 14 bits height - 1
    const auto bits = read_uint(b, 21, 4, false);
    if (!bits || b[20] != 0x2F) return std::nullopt;
    return ImageSize{std::int64_t{*bits & 0x3FFF} + 1, std::int64_t{(*bits >> 14) & 0x3FFF} + 1};
  }
  if (starts_with(b, 12, "VP8 ")) {  // lossy: key frame start code, then 14-bit width and height
    if (!(read_uint(b, 23, 3, true) == 0x9D012Au)) return std::nullopt;
    const auto w = read_uint(b, 26, 2, false), h = read_uint(b, 28, 2, false);
    if (!w || !h) return std::nullopt;
    return ImageSize{*w & 0x3FFF, *h & 0x3FFF};
  }
  return std::nullopt;
}

// The next decimal number of a PNM header, skipping whitespace and # comments.
std::optional<std::int64_t> pnm_number(Bytes b, std::size_t& i) {
  while (i < b.size()) {
    if (b[i] == '#') {
      while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
    } else if (std::isspace(b[i])) {
      ++i;
    } else {
      break;
    }
  }
  std::int64_t v = 0;
  const std::size_t start = i;
  while (i < b.size() && std::isdigit(b[i]) && i - start < 12) v = v * 10 + (b[i++] - '0');
  if (i == start) return std::nullopt;
  return v;
}

// PAM (P7): "WIDTH n" and "HEIGHT n" lines before ENDHDR.
std::optional<ImageSize> pam_size(Bytes b) {
  const std::string_view text(reinterpret_cast<const char*>(b.data()), std::min<std::size_t>(b.size(), 4096));
  const auto value = [&](std::string_view key) -> std::optional<std::int64_t> {
    const auto at = text.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    std::size_t i = at + key.size();
    return pnm_number(b, i);
  };
  const auto w = value("\nWIDTH"), h = value("\nHEIGHT");
  if (!w || !h) return std::nullopt;
  return ImageSize{*w, *h};
}

std::optional<ImageSize> pnm_size(Bytes b) {
  if (b[1] == '7') return pam_size(b);
  std::size_t i = 2;
  const auto w = pnm_number(b, i);
  const auto h = w ? pnm_number(b, i) : std::nullopt;
  if (!w || !h) return std::nullopt;
  return ImageSize{*w, *h};
}

// The first image file directory's ImageWidth (256) and ImageLength (257) tags, SHORT or LONG.
std::optional<ImageSize> tiff_size(Bytes b) {
  const bool big = b[0] == 'M';
  const auto ifd = read_uint(b, 4, 4, big);
  const auto count = ifd ? read_uint(b, *ifd, 2, big) : std::nullopt;
  if (!count) return std::nullopt;
  std::optional<std::uint32_t> w, h;
  for (std::uint32_t e = 0; e < *count; ++e) {
    const std::size_t at = *ifd + 2 + std::size_t{12} * e;
    const auto tag = read_uint(b, at, 2, big), type = read_uint(b, at + 2, 2, big);
    if (!tag || !type) return std::nullopt;
    if (*tag != 256 && *tag != 257) continue;
    const auto v = *type == 3 ? read_uint(b, at + 8, 2, big) : *type == 4 ? read_uint(b, at + 8, 4, big) : std::nullopt;
    (*tag == 256 ? w : h) = v;
  }
  return size_of(w, h);
}

bool is_jpeg(Bytes b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

// P1-P6 (PBM, PGM, PPM) and P7 (PAM), then whitespace.
bool is_pnm(Bytes b) { return b.size() >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && std::isspace(b[2]); }

bool is_tiff(Bytes b) {
  return starts_with(b, 0, std::string_view("II*\0", 4)) || starts_with(b, 0, std::string_view("MM\0*", 4));
}

}  // namespace

std::optional<ImageSize> image_header_size(std::span<const std::uint8_t> b) {
  if (starts_with(b, 0, "\x89PNG\r\n\x1a\n")) return png_size(b);
  if (is_jpeg(b)) return jpeg_size(b);
  if (starts_with(b, 0, "BM")) return bmp_size(b);
  if (starts_with(b, 0, "RIFF") && starts_with(b, 8, "WEBP")) return webp_size(b);
  if (is_pnm(b)) return pnm_size(b);
  if (is_tiff(b)) return tiff_size(b);
  return std::nullopt;
}

}  // namespace jitvision::io
