#include "json_text.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace jitvision::app {
namespace {

// RFC 3629's well-formed sequences: the lead bytes of a range, the sequence's length and the range its second byte
// must fall in (no overlong forms, no surrogates, nothing above U+10FFFF); later bytes are 0x80-0xBF.
struct Utf8Lead {
  unsigned char first_lo, first_hi;
  std::size_t length;
  unsigned char second_lo, second_hi;
};
constexpr Utf8Lead kUtf8Leads[] = {
    {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF}, {0xE1, 0xEC, 3, 0x80, 0xBF}, {0xED, 0xED, 3, 0x80, 0x9F},
    {0xEE, 0xEF, 3, 0x80, 0xBF}, {0xF0, 0xF0, 4, 0x90, 0xBF}, {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
};

// Length of the valid UTF-8 sequence starting at `s[i]`, or 0 when the byte there does not start one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  const auto* lead = std::find_if(std::begin(kUtf8Leads), std::end(kUtf8Leads),
                                  [b0](const Utf8Lead& l) { return b0 >= l.first_lo && b0 <= l.first_hi; });
  if (lead == std::end(kUtf8Leads) || i + lead->length > s.size()) return 0;
  if (byte(i + 1) < lead->second_lo || byte(i + 1) > lead->second_hi) return 0;
  for (std::size_t k = 2; k < lead->length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return lead->length;
}

}  // namespace

std::string escape_invalid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    if (const auto n = utf8_sequence_length(bytes, i)) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(bytes[i]));
      out += hex;
      ++i;
    }
  }
  return out;
}

}  // namespace jitvision::app
