#pragma once
// The detect flags whose meaning depends on the model or the machine, resolved once these are known: --classes by
// index or name, --device auto|cpu|cuda|cuda:N|N.
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "jitvision/core/precision.hpp"

namespace jitvision::app {

// --sources FILE: appends the file's sources, one per line; blank lines and lines starting with # are skipped, and
// spaces around a source are trimmed. Throws UsageError (one line) when the file cannot be read or names no source.
void append_sources_file(const std::string& file, std::vector<std::string>& sources);

// --classes items (indices or class names, as the official detector's) -> class indices. Throws UsageError for a
// name the model does not have or an index outside its classes.
std::vector<int> resolve_classes(const std::vector<std::string>& given, const std::vector<std::string>& names);

// True for the --device spellings: auto, cpu, cuda, cuda:N, N (a CUDA device index, as the official detector's).
bool is_device_flag(const std::string& text);

// The device --device names. Throws DeviceError when it asks for CUDA (or a CUDA device index) that is not there.
torch::Device resolve_device_flag(const std::string& text);

// --dtype (fp32|bf16|fp16) and --half: --half is --dtype fp16 where CUDA runs and is ignored with a warning on the
// CPU (as in the official detector); --dtype fp16 on the CPU is refused later (plan_precision). nullopt: neither
// given, so the model file's own precision. UsageError for an unknown dtype or --half with another --dtype.
std::optional<Precision> resolve_precision_flags(const std::string& dtype, bool half, const torch::Device& device);

}  // namespace jitvision::app
