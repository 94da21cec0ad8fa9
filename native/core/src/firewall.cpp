#include "jitvision/core/firewall.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "jitvision/core/errors.hpp"

namespace jitvision {
namespace {

// python/jitvision/model_allowlist.txt, put into a raw string literal by CMake (configure_file).
const char* const kAllowlistText =
#include "model_allowlist.inc"
    ;

constexpr std::string_view kPicklePrefix = "pickle:";
constexpr int kMaxNamed = 5;  // refused names a message lists
const std::set<std::string_view> kRoots = {"torch", "ops", "math", "builtins", "CONSTANTS", "__torch__"};

bool ident_start(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\\'; }

// Index just past the string literal that starts at text[i] (single, double or triple quoted).
size_t skip_string(std::string_view text, size_t i) {
  const std::string quote =
      text.substr(i, 3) == std::string(3, text[i]) ? std::string(3, text[i]) : std::string(1, text[i]);
  i += quote.size();
  while (i < text.size() && text.substr(i, quote.size()) != quote) i += text[i] == '\\' ? 2 : 1;
  return std::min(text.size(), i + quote.size());
}

// The dotted name starting at identifier text[i] (whitespace allowed around dots); i moves past it.
std::string read_chain(std::string_view text, size_t& i) {
  std::string name;
  while (true) {
    const size_t start = i;
    while (i < text.size() && ident_char(text[i])) ++i;
    name += text.substr(start, i - start);
    size_t j = i;
    while (j < text.size() && space(text[j])) ++j;
    if (j >= text.size() || text[j] != '.') return name;
    ++j;
    while (j < text.size() && space(text[j])) ++j;
    if (j >= text.size() || !ident_start(text[j])) {
      i = j;
      return name + ".";
    }
    name += ".";
    i = j;
  }
}

std::uint64_t le(std::string_view b, size_t at, int bytes) {
  if (at + bytes > b.size()) throw ModelError("truncated");
  std::uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(b[at + k]);
  return v;
}

// Argument layout of each pickle opcode: 'n' none, '1' '2' '4' '8' fixed bytes, 'a' 'b' 'c' a 1-, 4- or 8-byte
// length and that many bytes, 'l' one line, 'L' two lines, 'x' a name that cannot be resolved statically.
struct PickleArgClass {
  std::string_view ops;
  char arg;
};
constexpr PickleArgClass kPickleArgClasses[] = {
    {"c", 'L'},
    {"\x93io\x82\x83\x84", 'x'},
    {"(.012N\x88\x89)t\x85\x86\x87]ael}dsubR\x81\x92Q\x8f\x90\x91\x94\x97\x98", 'n'},
    {"Kqh\x80", '1'},
    {"M", '2'},
    {"Jrj", '4'},
    {"G\x95", '8'},
    {"U\x8c"
     "C\x8a",
     'a'},
    {"TXB\x8b", 'b'},
    {"\x8d\x8e\x96", 'c'},
    {"ILFSVpgP", 'l'},
};

char pickle_arg(unsigned char op) {
  for (const auto& c : kPickleArgClasses) {
    if (c.ops.find(static_cast<char>(op)) != std::string_view::npos) return c.arg;
  }
  return '?';
}

struct ZipEntry {
  std::string name;
  int method = 0;
  std::uint64_t compressed = 0, size = 0, offset = 0;
};

std::string read_at(std::ifstream& in, std::uint64_t offset, std::uint64_t n) {
  std::string buf(n, '\0');
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  if (!in.read(buf.data(), static_cast<std::streamsize>(n))) throw ModelError("truncated");
  return buf;
}

// The zip64 end-of-central-directory record's entry count, size and offset of the central directory.
void read_zip64_end(std::ifstream& in, std::uint64_t locator_at, std::uint64_t& count, std::uint64_t& cd_size,
                    std::uint64_t& cd_offset) {
  const std::string locator = read_at(in, locator_at, 20);
  if (le(locator, 0, 4) != 0x07064b50) throw ModelError("no zip64 locator");
  const std::string end = read_at(in, le(locator, 8, 8), 56);
  if (le(end, 0, 4) != 0x06064b50) throw ModelError("bad zip64 end record");
  count = le(end, 32, 8);
  cd_size = le(end, 40, 8);
  cd_offset = le(end, 48, 8);
}

// Replaces the 0xFFFFFFFF sizes and offset of a central-directory entry by its zip64 extra field's values.
void apply_zip64_extra(std::string_view extra, ZipEntry& e) {
  for (size_t at = 0; at + 4 <= extra.size();) {
    const auto id = le(extra, at, 2), len = le(extra, at + 2, 2);
    size_t v = at + 4;
    if (id == 1) {
      if (e.size == 0xFFFFFFFF) e.size = le(extra, v, 8), v += 8;
      if (e.compressed == 0xFFFFFFFF) e.compressed = le(extra, v, 8), v += 8;
      if (e.offset == 0xFFFFFFFF) e.offset = le(extra, v, 8);
    }
    at += 4 + len;
  }
}

std::vector<ZipEntry> read_central_directory(std::ifstream& in, std::uint64_t file_size) {
  const std::uint64_t tail_len = std::min<std::uint64_t>(file_size, 65557);
  const std::string tail = read_at(in, file_size - tail_len, tail_len);
  size_t at = tail.size() < 22 ? std::string::npos : tail.rfind("PK\x05\x06");
  if (at == std::string::npos || at + 22 > tail.size()) throw ModelError("no end of central directory");
  std::uint64_t count = le(tail, at + 10, 2), cd_size = le(tail, at + 12, 4), cd_offset = le(tail, at + 16, 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (file_size - tail_len + at < 20) throw ModelError("no zip64 locator");
    read_zip64_end(in, file_size - tail_len + at - 20, count, cd_size, cd_offset);
  }
  if (count > ArchiveLimits::records) throw ModelError(std::to_string(count) + " records (too many)");
  if (cd_offset > file_size || cd_size > file_size - cd_offset || cd_size < 46 * count) {
    throw ModelError("the central directory lies outside the file");
  }
  const std::string cd = read_at(in, cd_offset, cd_size);
  std::vector<ZipEntry> entries;
  for (size_t p = 0; entries.size() < count;) {
    if (le(cd, p, 4) != 0x02014b50) throw ModelError("corrupt central directory");
    ZipEntry e;
    e.method = static_cast<int>(le(cd, p + 10, 2));
    e.compressed = le(cd, p + 20, 4);
    e.size = le(cd, p + 24, 4);
    const auto name_len = le(cd, p + 28, 2), extra_len = le(cd, p + 30, 2), comment_len = le(cd, p + 32, 2);
    e.offset = le(cd, p + 42, 4);
    if (p + 46 + name_len + extra_len > cd.size()) throw ModelError("corrupt central directory");
    e.name = cd.substr(p + 46, name_len);
    apply_zip64_extra(std::string_view(cd).substr(p + 46 + name_len, extra_len), e);
    entries.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string part; std::getline(ss, part, '/');) parts.push_back(part);
  return parts;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Which limit applies to an archive entry: code, pickle, extra, data or small (version, byteorder, ...).
std::string record_category(const std::string& name) {
  const auto parts = split(name);
  const bool under_code = parts.size() > 1 && std::find(parts.begin(), parts.end() - 1, "code") != parts.end() - 1;
  if (under_code && ends_with(name, ".py")) return "code";
  if (ends_with(name, ".pkl") || ends_with(name, ".debug_pkl")) return "pickle";
  if (parts.size() > 2 && parts[1] == "extra") return "extra";
  if (parts.size() > 2 && (parts[1] == "data" || parts[1] == "constants" || parts[1] == "traced_inputs")) return "data";
  return "small";
}

std::uint64_t limit_of(const std::string& category) {
  if (category == "code") return ArchiveLimits::code;
  if (category == "pickle") return ArchiveLimits::pickle;
  if (category == "extra") return ArchiveLimits::extra;
  if (category == "data") return ArchiveLimits::data;
  return ArchiveLimits::small;
}

// Size checks on the declared sizes, before any record is read.
void check_entries(const std::string& path, const std::vector<ZipEntry>& entries) {
  std::set<std::string> names;
  std::uint64_t total = 0;
  for (const auto& e : entries) {
    if (!names.insert(e.name).second) throw ModelError("model file " + path + " has duplicate record names");
    const std::string category = record_category(e.name);
    if (e.size > limit_of(category)) {
      throw ModelError("model file " + path + ": record " + e.name + " declares " + std::to_string(e.size) +
                       " bytes, over the " + std::to_string(limit_of(category)) + "-byte limit for " + category +
                       " records");
    }
    if (category == "data" && e.method != 0) {
      throw ModelError("model file " + path + ": tensor record " + e.name +
                       " is compressed (TorchScript stores tensor data uncompressed)");
    }
    total += e.size;
  }
  if (total > ArchiveLimits::total) {
    throw ModelError("model file " + path + " declares " + std::to_string(total) + " bytes in all (limit " +
                     std::to_string(ArchiveLimits::total) + ")");
  }
}

// One record's bytes: stored or deflated, exactly its declared size (a record that inflates to more or less lies).
std::string read_record(std::ifstream& in, std::uint64_t file_size, const ZipEntry& e) {
  const std::string local = read_at(in, e.offset, 30);
  if (le(local, 0, 4) != 0x04034b50) throw ModelError("corrupt local header of " + e.name);
  const std::uint64_t data_at = e.offset + 30 + le(local, 26, 2) + le(local, 28, 2);
  if (data_at > file_size || e.compressed > file_size - data_at) throw ModelError(e.name + " runs past the file");
  if (e.compressed > e.size + e.size / 100 + 1024) throw ModelError(e.name + " lies about its size");
  const std::string raw = read_at(in, data_at, e.compressed);
  if (e.method == 0) {
    if (e.compressed != e.size) throw ModelError(e.name + " lies about its size");
    return raw;
  }
  if (e.method != 8) throw ModelError(e.name + " uses an unsupported compression method");
  std::string out(e.size, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw ModelError("zlib failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const auto produced = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END || produced != e.size) throw ModelError(e.name + " lies about its size or is corrupt");
  return out;
}

bool is_archive_class(std::string_view name) {
  if (name.substr(0, kPicklePrefix.size()) == kPicklePrefix) name.remove_prefix(kPicklePrefix.size());
  return (name.substr(0, 10) == "__torch__." && name.substr(0, 23) != "__torch__.torch.classes") ||
         name.substr(0, 11) == "CONSTANTS.c";
}

void check_header(std::ifstream& in, const std::string& path) {
  char head[8] = {};
  in.read(head, 8);
  const std::string_view h(head, 8);
  if (!in || h.substr(0, 4) != std::string_view("PK\x03\x04", 4) || h.substr(4, 4) == "PTMF") {
    throw ModelError("model file " + path +
                     " is not a TorchScript archive (not a readable zip file; truncated or corrupt?)");
  }
}

// A scan over TorchScript code: the position and whether the last token was a '.' (a member, not a root name).
struct CodeScan {
  std::string_view text;
  size_t i = 0;
  bool after_dot = false;
};

void skip_comment(CodeScan& s) {
  const size_t end = s.text.find('\n', s.i);
  s.i = end == std::string_view::npos ? s.text.size() : end;
}

void skip_number(CodeScan& s) {
  while (s.i < s.text.size() && (ident_char(s.text[s.i]) || s.text[s.i] == '.')) ++s.i;
  s.after_dot = false;
}

// Reads the dotted name at s.i; adds it to found when it is not a member and starts at one of kRoots.
void read_name(CodeScan& s, std::vector<std::string>& found) {
  const size_t start = s.i;
  std::string name = read_chain(s.text, s.i);
  if (!s.after_dot && kRoots.count(std::string_view(name).substr(0, name.find('.')))) found.push_back(name);
  std::string_view consumed = s.text.substr(start, s.i - start);
  while (!consumed.empty() && space(consumed.back())) consumed.remove_suffix(1);
  s.after_dot = !consumed.empty() && consumed.back() == '.';
}

// A cursor over pickle bytes that never moves past the end (a huge length must not wrap it around).
class PickleCursor {
 public:
  explicit PickleCursor(std::string_view data) : data_(data) {}
  bool done() const { return i_ >= data_.size(); }
  unsigned char next() { return static_cast<unsigned char>(data_[i_++]); }
  void skip(std::uint64_t n) {
    if (n > data_.size() - i_) throw ModelError("truncated");
    i_ += n;
  }
  // A little-endian length of `width` bytes and that many bytes.
  void skip_counted(int width) {
    const std::uint64_t n = le(data_, i_, width);
    skip(width);
    skip(n);
  }
  std::string line() {
    const size_t end = data_.find('\n', i_);
    if (end == std::string_view::npos) throw ModelError("truncated");
    std::string s(data_.substr(i_, end - i_));
    i_ = end + 1;
    return s;
  }

 private:
  std::string_view data_;
  size_t i_ = 0;
};

// What an opcode whose global is named by a run-time value (not resolvable statically) is listed as.
std::string_view dynamic_global(unsigned char op) {
  if (op == 0x93) return "STACK_GLOBAL";
  if (op == 'i') return "INST";
  return op == 'o' ? "OBJ" : "EXT";
}

void skip_dynamic_argument(PickleCursor& at, unsigned char op) {
  if (op == 'i') at.line(), at.line();
  if (op >= 0x82 && op <= 0x84) at.skip(op == 0x82 ? 1 : op == 0x83 ? 2 : 4);
}

// Moves the cursor past op's argument; adds the global the opcode names, if any, to found.
void read_argument(PickleCursor& at, unsigned char op, std::vector<std::string>& found) {
  const std::string prefix(kPicklePrefix);
  switch (const char arg = pickle_arg(op)) {
    case 'n':
      return;
    case '1':
    case '2':
    case '4':
    case '8':
      return at.skip(arg - '0');
    case 'a':
      return at.skip_counted(1);
    case 'b':
      return at.skip_counted(4);
    case 'c':
      return at.skip_counted(8);
    case 'l':
      at.line();
      return;
    case 'L': {
      const std::string module = at.line();
      found.push_back(prefix + module + "." + at.line());
      return;
    }
    case 'x':
      found.push_back(prefix + std::string(dynamic_global(op)));
      return skip_dynamic_argument(at, op);
    default:
      throw ModelError("unknown opcode");
  }
}

}  // namespace

std::vector<std::string> code_names(std::string_view text) {
  std::vector<std::string> found;
  for (CodeScan s{text}; s.i < text.size();) {
    const char c = text[s.i];
    if (c == '#') {
      skip_comment(s);
    } else if (c == '"' || c == '\'') {
      s.i = skip_string(text, s.i);
      s.after_dot = false;
    } else if (ident_start(c)) {
      read_name(s, found);
    } else if (c >= '0' && c <= '9') {
      skip_number(s);
    } else {
      s.after_dot = c == '.' || (s.after_dot && space(c));
      ++s.i;
    }
  }
  return found;
}

std::vector<std::string> pickle_globals(std::string_view data) {
  std::vector<std::string> found;
  try {
    for (PickleCursor at(data); !at.done();) {
      const unsigned char op = at.next();
      if (op == '.') return found;
      read_argument(at, op, found);
    }
  } catch (const ModelError&) {
  }
  found.push_back(std::string(kPicklePrefix) + "<malformed pickle>");
  return found;
}

namespace {

// The file's size and its records, after the header and size checks (nothing but the zip directory is read).
std::vector<ZipEntry> checked_archive(std::ifstream& in, const std::string& path, std::uint64_t& file_size) {
  if (!in) throw ModelError("model file " + path + " cannot be opened");
  check_header(in, path);
  in.seekg(0, std::ios::end);
  file_size = static_cast<std::uint64_t>(in.tellg());
  std::vector<ZipEntry> entries;
  try {
    entries = read_central_directory(in, file_size);
  } catch (const ModelError& e) {
    throw ModelError("model file " + path + " is not a TorchScript archive (" + e.what() + ")");
  }
  check_entries(path, entries);
  return entries;
}

}  // namespace

std::map<std::string, std::string> used_names(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t file_size = 0;
  const auto entries = checked_archive(in, path, file_size);
  std::map<std::string, std::string> found;
  for (const auto& e : entries) {
    const std::string category = record_category(e.name);
    if (category != "code" && category != "pickle") continue;
    std::string data;
    try {
      data = read_record(in, file_size, e);
    } catch (const ModelError& err) {
      throw ModelError("model file " + path + " is not a TorchScript archive (" + err.what() + ")");
    }
    const auto names = category == "code" ? code_names(data) : pickle_globals(data);
    for (const auto& n : names) found.emplace(n, e.name);
  }
  return found;
}

std::vector<std::string> archive_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t file_size = 0;
  std::vector<std::string> names;
  for (const auto& e : checked_archive(in, path, file_size)) names.push_back(e.name);
  return names;
}

const std::vector<std::string>& model_allowlist() {
  static const std::vector<std::string> list = [] {
    std::vector<std::string> out;
    std::stringstream ss(kAllowlistText);
    for (std::string line; std::getline(ss, line);) {
      line = line.substr(0, line.find('#'));
      const auto b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
      if (b != std::string::npos) out.push_back(line.substr(b, e - b + 1));
    }
    std::sort(out.begin(), out.end());
    return out;
  }();
  return list;
}

void check_model(const std::string& path, bool trust_model) {
  const char* env = std::getenv(kTrustModelEnv);
  if (trust_model || (env != nullptr && std::string(env) == "1")) {
    std::ifstream in(path, std::ios::binary);
    std::uint64_t file_size = 0;
    checked_archive(in, path, file_size);
    std::cerr << "jitvision: warning: model file " << path << " is loaded without the firewall check (trusted)\n";
    return;
  }
  const auto& allowed = model_allowlist();
  std::string refused;
  int count = 0;
  for (const auto& [name, record] : used_names(path)) {
    if (is_archive_class(name) || std::binary_search(allowed.begin(), allowed.end(), name)) continue;
    if (++count <= kMaxNamed) refused += (refused.empty() ? "" : ", ") + name + " (in " + record + ")";
  }
  if (count > kMaxNamed) refused += " and " + std::to_string(count - kMaxNamed) + " more";
  if (count > 0) {
    throw ModelError("model file " + path + " uses what the allow-list of pure tensor operators lacks: " + refused +
                     "; refused (" + kTrustModelEnv + "=1 or --trust-model loads it anyway)");
  }
}

}  // namespace jitvision
