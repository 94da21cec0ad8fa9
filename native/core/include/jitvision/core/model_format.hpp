#pragma once
// What a model file is, told from its content (never its name): one of the two formats jitvision runs, or a
// ModelError that names the foreign format and says what to do with it. No torch headers.
#include <string>
#include <string_view>

namespace jitvision {

// TorchScript (the primary format) or an AOTInductor package (.pt2: compiled native code, see docs/security.md);
// Triton: no file, a model served by a Triton Inference Server (native/remote, `detect --server`).
enum class ModelFormat { TorchScript, Pt2, Triton };
// "torchscript", "pt2" (the same strings in python/jitvision/model_file.py) or "triton".
std::string_view to_string(ModelFormat format);

// Throws ModelError for an ONNX model, a torch.export program that AOTInductor has not compiled, a pickled YOLOv5
// checkpoint (.pt/.pth: "use yolov5 import"), a state_dict, another torch.save() pickle, a legacy (non-zip) pickle,
// safetensors, TensorFlow Lite, Keras/HDF5, OpenVINO IR or GGUF, and for a zip archive that is neither format. Any
// other file is returned as TorchScript, for the loader to say what is wrong with it (truncated, corrupt, ...).
ModelFormat model_format(const std::string& path);

}  // namespace jitvision
