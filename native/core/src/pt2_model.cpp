// AOTInductor packages (.pt2) behind the Model interface. A package holds a shared library compiled for one device;
// its metadata (our jitvision.json among AOTInductor's own keys) is read without loading that library, which is
// loaded on the first to() or forward().
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>

#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/firewall.hpp"
#include "jitvision/core/model.hpp"

namespace jitvision {
namespace {

constexpr std::int64_t kMaxInputSide = 8192;  // contract.cpp's largest input size
constexpr std::size_t kRunners = 2;           // forwards that may run at once (the pipeline's inference workers)

// What the package takes: [1..max_batch, channels, H, W], H and W fixed or multiples of `multiple`.
struct InputSpec {
  std::int64_t max_batch = 1, channels = 3, height = 0, width = 0, multiple = 1;
  std::string describe() const {
    const std::string hw = height > 0 ? std::to_string(height) + ", " + std::to_string(width)
                                      : "H, W] with H and W multiples of " + std::to_string(multiple) + " up to " +
                                            std::to_string(kMaxInputSide);
    return "float32 [1.." + std::to_string(max_batch) + ", " + std::to_string(channels) + ", " + hw +
           (height > 0 ? "]" : "");
  }
};

// The input our exporters compiled the package for, from its jitvision.json (null: no metadata, nothing runs).
std::optional<InputSpec> input_spec(const nlohmann::json& meta) {
  if (!meta.is_object()) return std::nullopt;
  InputSpec s;
  try {
    s.max_batch = meta.at("max_batch").get<std::int64_t>();
    if (meta.value("task", "") == "detect") {
      s.multiple = meta.at("stride").get<std::int64_t>();
    } else {
      const auto shape = meta.at("input").at("shape").get<std::vector<std::int64_t>>();
      if (shape.size() != 4) return std::nullopt;
      s.channels = shape[1], s.height = shape[2], s.width = shape[3];
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // read_contract() says what is missing
  }
  return s;
}

bool fits(const InputSpec& s, const torch::Tensor& x) {
  if (x.dim() != 4 || x.scalar_type() != torch::kFloat32) return false;
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (b < 1 || b > s.max_batch || c != s.channels) return false;
  if (s.height > 0) return h == s.height && w == s.width;
  return h > 0 && w > 0 && h <= kMaxInputSide && w <= kMaxInputSide && h % s.multiple == 0 && w % s.multiple == 0;
}

class Pt2Model final : public Model {
 public:
  Pt2Model(std::string path, std::string device, std::optional<InputSpec> spec)
      : path_(std::move(path)), package_device_(std::move(device)), spec_(spec) {}
  ModelFormat format() const override { return ModelFormat::Pt2; }

  void to(torch::Device device, torch::ScalarType dtype, const InferenceForm& /*form: fixed at export*/) override {
    if (dtype != torch::kFloat32) {
      throw UsageError("model file " + path_ + " is a .pt2 package: it takes float32 and its inner precision is set " +
                       "when it is exported (--dtype), so --half does not apply");
    }
    if (device.str().rfind(package_device_, 0) != 0) {
      throw DeviceError("model file " + path_ + " is a .pt2 package compiled for " + package_device_ + ", not for " +
                        device.str() + ": run it with --device " + package_device_ +
                        " or export it again with --device " + (device.is_cuda() ? "cuda" : "cpu"));
    }
    device_ = device;
    loader();
  }

  std::vector<torch::Tensor> forward(const torch::Tensor& input) override {
    if (!spec_) {
      throw ModelError("model file " + path_ + " is a .pt2 package without jitvision.json metadata: its input is " +
                       "unknown, so jitvision does not run it");
    }
    if (!fits(*spec_, input) || input.device() != device_) {
      throw ModelError("model file " + path_ + " takes " + spec_->describe() + " on " + device_.str() + "; got " +
                       c10::str(input.scalar_type()) + " " + c10::str(input.sizes()) + " on " + input.device().str());
    }
    return loader().run({input.contiguous()});
  }

 private:
  torch::inductor::AOTIModelPackageLoader& loader() {
    std::call_once(loaded_, [this] {
      try {
        load_torch_library();  // the package's library needs it (device.hpp)
        const c10::DeviceIndex index = device_.is_cuda() ? std::max<c10::DeviceIndex>(device_.index(), 0) : -1;
        loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path_, "model", false, kRunners, index);
      } catch (const c10::Error& e) {
        throw ModelError("model file " + path_ + " is a .pt2 package that cannot be loaded here (made by another " +
                         "torch version or for another machine?): " + e.what_without_backtrace());
      }
    });
    if (!loader_) throw ModelError("model file " + path_ + " is a .pt2 package that failed to load");
    return *loader_;
  }

  std::string path_;
  std::string package_device_;  // "cpu" or "cuda"
  std::optional<InputSpec> spec_;
  torch::Device device_{torch::kCPU};
  std::once_flag loaded_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

bool trusted(const LoadOptions& options) {
  const char* env = std::getenv(kTrustModelEnv);
  return options.trust_model || (env != nullptr && std::string(env) == "1");
}

nlohmann::json parse_metadata(const std::string& path, const std::string& text) {
  if (text.empty()) return nullptr;
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("model file " + path + " has corrupt metadata in its jitvision.json entry: " + e.what());
  }
}

}  // namespace

LoadedModel load_pt2(const std::string& path, const LoadOptions& options) {
  if (!trusted(options)) {
    throw ModelError("model file " + path + " is an AOTInductor package (.pt2): compiled native code that the " +
                     "model firewall cannot check; refused (--trust-model or " + kTrustModelEnv +
                     "=1 runs it, see docs/security.md)");
  }
  std::cerr << "jitvision: warning: model file " << path
            << " is a .pt2 package of compiled native code, run unchecked (trusted)\n";
  std::unordered_map<std::string, std::string> meta;
  try {
    meta = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
  } catch (const c10::Error& e) {
    throw ModelError("model file " + path +
                     " is a .pt2 archive whose AOTInductor metadata cannot be read: " + e.what_without_backtrace());
  }
  LoadedModel model;
  model.path = path;
  model.format = ModelFormat::Pt2;
  model.metadata = parse_metadata(path, meta.count("jitvision.json") ? meta.at("jitvision.json") : "");
  const std::string device = meta.count("AOTI_DEVICE_KEY") ? meta.at("AOTI_DEVICE_KEY") : "cpu";
  model.model = std::make_shared<Pt2Model>(path, device, input_spec(model.metadata));
  return model;
}

}  // namespace jitvision
