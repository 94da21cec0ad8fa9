#include "detect_flags.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include <torch/cuda.h>

#include "failure.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision::app {
namespace {

std::optional<int> index_of(const std::string& text) {
  if (text.empty() || text.size() > 6 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return std::nullopt;
  }
  return std::stoi(text);
}

std::optional<int> cuda_index(const std::string& text) {
  if (text.rfind("cuda:", 0) == 0) return index_of(text.substr(5));
  return index_of(text);
}

std::string some_names(const std::vector<std::string>& names) {
  std::string text;
  for (std::size_t i = 0; i < names.size() && i < 8; ++i) text += (i ? ", " : "") + names[i];
  return text + (names.size() > 8 ? ", ..." : "");
}

}  // namespace

void append_sources_file(const std::string& file, std::vector<std::string>& sources) {
  std::ifstream in(file);
  if (!in) {
    throw UsageError("--sources " + file + ": cannot read it (" + std::strerror(errno) + ")");
  }
  const auto before = sources.size();
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    sources.push_back(line.substr(first, last - first + 1));
  }
  if (in.bad()) throw UsageError("--sources " + file + ": cannot read it (" + std::strerror(errno) + ")");
  if (sources.size() == before) throw UsageError("--sources " + file + ": names no source (one per line)");
}

std::vector<int> resolve_classes(const std::vector<std::string>& given, const std::vector<std::string>& names) {
  std::vector<int> classes;
  const int count = static_cast<int>(names.size());
  for (const auto& item : given) {
    if (const auto index = index_of(item)) {
      if (*index >= count) {
        throw UsageError("--classes " + item + ": the model has " + std::to_string(count) + " classes (0.." +
                         std::to_string(count - 1) + ")");
      }
      classes.push_back(*index);
      continue;
    }
    const auto found = std::find(names.begin(), names.end(), item);
    if (found == names.end()) {
      throw UsageError("--classes " + item +
                       ": the model has no class of that name (its classes: " + some_names(names) + ")");
    }
    classes.push_back(static_cast<int>(found - names.begin()));
  }
  return classes;
}

bool is_device_flag(const std::string& text) {
  return text == "auto" || text == "cpu" || text == "cuda" || cuda_index(text).has_value();
}

torch::Device resolve_device_flag(const std::string& text) {
  const auto index = cuda_index(text);
  if (!index) return resolve_device(parse_device_choice(text));
  resolve_device(DeviceChoice::Cuda);  // throws DeviceError when no GPU is usable
  const int count = static_cast<int>(torch::cuda::device_count());
  if (*index >= count) {
    throw DeviceError("--device " + text + ": there is no CUDA device " + std::to_string(*index) + " (" +
                      std::to_string(count) + " found)");
  }
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(*index)};
}

std::optional<Precision> resolve_precision_flags(const std::string& dtype, bool half, const torch::Device& device) {
  std::optional<Precision> precision;
  if (!dtype.empty()) precision = parse_precision(dtype);
  if (!half) return precision;
  if (precision && *precision != Precision::Float16) {
    throw UsageError("--half is --dtype fp16: it cannot go with --dtype " + dtype);
  }
  if (precision) return precision;  // --dtype fp16 --half: said twice, refused on the CPU like --dtype fp16
  if (device.is_cuda()) return Precision::Float16;
  report_warning("--half needs CUDA; running in FP32 on the CPU");
  return std::nullopt;
}

}  // namespace jitvision::app
