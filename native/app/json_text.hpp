#pragma once
// Strings that come from outside (file names, source specs) into JSON output. A Linux file name is any bytes, but
// JSON text is UTF-8: nlohmann::json throws on invalid UTF-8 at dump time.
#include <string>
#include <string_view>

namespace jitvision::app {

// `bytes` unchanged when it is valid UTF-8; otherwise each byte that is not part of a valid UTF-8 sequence is
// written as the four characters \xNN (its value in lower-case hex), e.g. "caf\xe9.jpg" for a Latin-1 name.
// The result is always valid UTF-8. docs/detect.md ("JSON lines") documents this for users.
std::string escape_invalid_utf8(std::string_view bytes);

}  // namespace jitvision::app
