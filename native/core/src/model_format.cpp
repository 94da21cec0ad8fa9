#include "jitvision/core/model_format.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <vector>

#include "jitvision/core/errors.hpp"
#include "jitvision/core/firewall.hpp"

namespace jitvision {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

[[noreturn]] void refuse(const std::string& path, const std::string& what) {
  throw ModelError("model file " + path + " is " + what);
}

// The first bytes of a file (fewer for a short one).
std::string head_of(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string head(n, '\0');
  in.read(head.data(), static_cast<std::streamsize>(n));
  head.resize(static_cast<std::size_t>(in.gcount()));
  return head;
}

// An ONNX ModelProto starts with field 1 (ir_version, a small varint), then another field key (producer_name,
// graph, opset_import, ...): 0x08 <version> <key>.
bool looks_like_onnx(std::string_view h) {
  constexpr std::array<unsigned char, 8> kNextKeys{0x12, 0x1a, 0x22, 0x2a, 0x32, 0x3a, 0x42, 0x72};
  if (h.size() < 3 || static_cast<unsigned char>(h[0]) != 0x08) return false;
  const auto version = static_cast<unsigned char>(h[1]);
  const auto key = static_cast<unsigned char>(h[2]);
  return version >= 1 && version <= 30 && std::find(kNextKeys.begin(), kNextKeys.end(), key) != kNextKeys.end();
}

// safetensors: an 8-byte little-endian header length, then the JSON header.
bool looks_like_safetensors(std::string_view h) {
  if (h.size() < 10 || h[8] != '{') return false;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(h[i]);
  return n > 1 && n < (100ull << 20);
}

// Files that are not zip archives: named when their signature is known, else left to the TorchScript loader.
void refuse_known_signature(const std::string& path, std::string_view h) {
  if (looks_like_onnx(h)) {
    refuse(path,
           "an ONNX model, which jitvision does not run: give it the PyTorch checkpoint instead "
           "(`python -m jitvision yolov5 import FILE.pt --out model.torchscript`, or `--format pt2`)");
  }
  if (h.size() >= 2 && static_cast<unsigned char>(h[0]) == 0x80 && h[1] >= 2 && h[1] <= 5) {
    refuse(path,
           "a legacy (non-zip) torch.save() pickle, not TorchScript: re-save it with a current torch.save, "
           "then `python -m jitvision yolov5 import` it (YOLOv5 checkpoints) or export it in Python");
  }
  if (looks_like_safetensors(h)) {
    refuse(path,
           "a safetensors weights file (weights without the network), not TorchScript: load it into its "
           "model in Python and export that");
  }
  if (starts_with(h, "GGUF")) refuse(path, "a GGUF (llama.cpp) model, which jitvision does not run");
  if (h.size() >= 8 && h.substr(4, 4) == "TFL3") refuse(path, "a TensorFlow Lite model, which jitvision does not run");
  if (starts_with(h, "\x89HDF")) refuse(path, "an HDF5 (Keras) model, which jitvision does not run");
  if (starts_with(h, "<?xml")) {
    refuse(path,
           "an XML file (an OpenVINO IR model?), which jitvision does not run: give it the PyTorch "
           "checkpoint or TorchScript file");
  }
}

// What a pickle of tensors and plain containers names (a state_dict, or a dict of tensors).
bool is_weights_only_global(const std::string& name) {
  return name == "pickle:collections.OrderedDict" || starts_with(name, "pickle:torch._utils._rebuild_") ||
         (starts_with(name, "pickle:torch.") && ends_with(name, "Storage"));
}

// A torch.save() archive (data.pkl, no code): which kind, from the globals its pickle names (read, never run).
[[noreturn]] void refuse_checkpoint(const std::string& path) {
  std::string model_class;
  bool weights_only = true;
  for (const auto& [name, record] : used_names(path)) {
    // The official classes live in models.yolo (the network) and models.common (its layers): name the network.
    if (starts_with(name, "pickle:models.") && (model_class.empty() || starts_with(name, "pickle:models.yolo."))) {
      model_class = name.substr(7);
    }
    if (!is_weights_only_global(name)) weights_only = false;
  }
  if (!model_class.empty()) {
    refuse(path, "a pickled YOLOv5 checkpoint (.pt/.pth, holding " + model_class +
                     "), not TorchScript: convert it with `python -m jitvision yolov5 import " + path +
                     " --out model.torchscript` (safe: runs nothing from the file)");
  }
  if (weights_only) {
    refuse(path,
           "a torch.save() checkpoint holding a state_dict (weights without the network), not TorchScript: "
           "load it into its model in Python and export that (`python -m jitvision yolov5 import` takes "
           "YOLOv5 checkpoints, `python -m jitvision mnist train` writes the digit model)");
  }
  refuse(path,
         "a torch.save() checkpoint (a pickled Python object), not TorchScript: export it first "
         "(python -m jitvision mnist train, or python -m jitvision yolov5 import)");
}

}  // namespace

std::string_view to_string(ModelFormat format) {
  if (format == ModelFormat::Triton) return "triton";
  return format == ModelFormat::Pt2 ? "pt2" : "torchscript";
}

ModelFormat model_format(const std::string& path) {
  const std::string head = head_of(path, 16);
  if (!starts_with(head, std::string_view("PK\x03\x04", 4))) {
    refuse_known_signature(path, head);
    return ModelFormat::TorchScript;
  }
  const auto records = archive_records(path);
  const auto has = [&](auto&& pred) { return std::any_of(records.begin(), records.end(), pred); };
  if (has([](const std::string& r) { return r == "archive_format" || ends_with(r, "/archive_format"); })) {
    if (has([](const std::string& r) { return r.find("/aotinductor/") != std::string::npos; })) {
      return ModelFormat::Pt2;
    }
    refuse(path,
           "a torch.export program (.pt2) without an AOTInductor-compiled model: compile it with "
           "torch._inductor.aoti_compile_and_package, or export with `python -m jitvision yolov5 import "
           "--format pt2`");
  }
  if (has([](const std::string& r) {
        return r.find("/code/") != std::string::npos || ends_with(r, "constants.pkl");
      })) {
    return ModelFormat::TorchScript;
  }
  if (has([](const std::string& r) { return ends_with(r, "/data.pkl") || r == "data.pkl"; })) refuse_checkpoint(path);
  refuse(path, "a zip archive, but neither TorchScript nor an AOTInductor package (.pt2)");
}

}  // namespace jitvision
