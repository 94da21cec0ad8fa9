#include "jitvision/remote/triton_model.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "http_client.hpp"
#include "jitvision/core/errors.hpp"

namespace jitvision::remote {
namespace {

using nlohmann::json;

// The parameters `triton export` writes (python/jitvision/triton/export.py, PARAMETER_PREFIX).
constexpr std::string_view kParameterPrefix = "jitvision.";

struct TensorInfo {
  std::string name;
  std::string datatype;  // KServe name: FP32, FP16
};

// The error text of a Triton reply ({"error": "..."}), else the start of the body.
std::string error_text(const HttpReply& reply) {
  const json parsed = json::parse(reply.body, nullptr, false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
    return parsed["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(reply.status) + " " + reply.body.substr(0, 200);
}

torch::ScalarType scalar_type(const std::string& datatype, const std::string& where) {
  if (datatype == "FP32") return torch::kFloat32;
  if (datatype == "FP16") return torch::kHalf;
  throw ModelError(where + " uses tensor type " + datatype + ", not FP32 or FP16");
}

class TritonModel final : public Model {
 public:
  TritonModel(HttpClient client, std::string name, TensorInfo input, TensorInfo output, std::int64_t max_batch)
      : client_(std::move(client)),
        name_(std::move(name)),
        input_(std::move(input)),
        output_(std::move(output)),
        max_batch_(max_batch) {}

  ModelFormat format() const override { return ModelFormat::Triton; }
  // The server owns device and precision: the input is sent in the type its config names, whatever `dtype` is.
  void to(torch::Device, torch::ScalarType, const InferenceForm&) override {}
  bool remote() const override { return true; }

  std::vector<torch::Tensor> forward(const torch::Tensor& input) override {
    const std::int64_t n = input.size(0), chunk = max_batch_ > 0 ? max_batch_ : n;
    std::vector<torch::Tensor> parts;
    for (std::int64_t start = 0; start < n; start += chunk)
      parts.push_back(infer(input.narrow(0, start, std::min(chunk, n - start))));
    torch::Tensor rows = parts.size() == 1 ? parts.front() : torch::cat(parts);
    return {rows.to(input.device(), input.scalar_type())};
  }

 private:
  std::string where() const { return "Triton model '" + name_ + "' at " + client_.base_url(); }

  torch::Tensor infer(const torch::Tensor& batch) {
    const torch::Tensor x = batch.to(torch::kCPU, scalar_type(input_.datatype, where())).contiguous();
    const std::string_view bytes(static_cast<const char*>(x.data_ptr()), x.nbytes());
    json input = json::object();
    input["name"] = input_.name;
    input["shape"] = x.sizes().vec();
    input["datatype"] = input_.datatype;
    input["parameters"] = {{"binary_data_size", x.nbytes()}};
    json output = json::object();
    output["name"] = output_.name;
    output["parameters"] = {{"binary_data", true}};
    json header = json::object();
    header["inputs"] = json::array({input});
    header["outputs"] = json::array({output});
    const HttpReply reply = client_.post("/v2/models/" + name_ + "/infer", header.dump(), bytes);
    if (reply.status >= 500) throw InferenceServerError(where() + " failed a request: " + error_text(reply));
    if (reply.status != 200) throw ModelError(where() + " refused a request: " + error_text(reply));
    return decode(reply);
  }

  torch::Tensor decode(const HttpReply& reply) const {
    if (reply.json_length < 0 || reply.json_length > static_cast<long long>(reply.body.size())) {
      throw ModelError(where() + " replied without binary output (no valid Inference-Header-Content-Length)");
    }
    const auto length = static_cast<std::size_t>(reply.json_length);
    const json head = json::parse(reply.body.substr(0, length), nullptr, false);
    try {
      for (const auto& out : head.at("outputs")) {
        if (out.at("name") != output_.name) continue;
        const auto shape = out.at("shape").get<std::vector<std::int64_t>>();
        const auto type = scalar_type(out.at("datatype").get<std::string>(), where());
        const auto size = out.at("parameters").at("binary_data_size").get<std::size_t>();
        auto rows = torch::empty(shape, torch::TensorOptions().dtype(type));
        if (size != rows.nbytes() || length + size > reply.body.size()) {
          throw ModelError(where() + " sent " + std::to_string(size) + " bytes for output " + output_.name + " " +
                           c10::str(rows.sizes()));
        }
        std::memcpy(rows.data_ptr(), reply.body.data() + length, size);  // the first (only) binary output
        return rows;
      }
    } catch (const json::exception& e) {
      throw ModelError(where() + " sent a reply header that does not parse: " + e.what());
    }
    throw ModelError(where() + " sent no output " + output_.name);
  }

  HttpClient client_;
  std::string name_;
  TensorInfo input_, output_;
  std::int64_t max_batch_;
};

// The model's state in the server's repository index ("" when the index does not list it).
std::string index_state(const HttpClient& client, const std::string& name, std::string& reason) {
  const HttpReply reply = client.post("/v2/repository/index", "{}");
  const json index = json::parse(reply.body, nullptr, false);
  if (reply.status != 200 || !index.is_array()) return "";
  for (const auto& entry : index) {
    if (entry.is_object() && entry.value("name", "") == name) {
      reason = entry.value("reason", "");
      return entry.value("state", "UNKNOWN");
    }
  }
  return "";
}

// Returns once the model is ready; ModelError when the server does not have it, InferenceServerError when it stays
// not ready through the retry budget.
void wait_until_ready(const HttpClient& client, const std::string& name) {
  for (int attempt = 0;; ++attempt) {
    if (client.get("/v2/models/" + name + "/ready").status == 200) return;
    std::string reason;
    const std::string state = index_state(client, name, reason);
    if (state.empty()) {
      throw ModelError("inference server " + client.base_url() + " has no model '" + name +
                       "' (see its /v2/repository/index)");
    }
    if (attempt >= client.options().retries) {
      throw InferenceServerError("model '" + name + "' on inference server " + client.base_url() +
                                 " is not ready (state " + state + (reason.empty() ? "" : ": " + reason) + ")");
    }
    back_off(attempt);
  }
}

// Our jitvision.json (contract.cpp reads it) rebuilt from the config's string parameters.
json metadata_from(const json& params, const std::string& where) {
  const auto value = [&](const std::string& key) -> std::string {
    return params.at(std::string(kParameterPrefix) + key).at("string_value").get<std::string>();
  };
  const auto parsed = [&](const std::string& key) { return json::parse(value(key)); };
  const std::string task = params.contains(std::string(kParameterPrefix) + "task") ? value("task") : "";
  if (task.empty()) {
    throw ModelError(where +
                     " is not a jitvision model (its config has no jitvision.task parameter): export it with "
                     "`python -m jitvision triton export`");
  }
  if (task == "detect") {
    return {{"task", task},
            {"dynamic", parsed("dynamic")},
            {"letterbox", value("letterbox")},
            {"stride", parsed("stride")},
            {"img_size", parsed("img_size")},
            {"names", parsed("names")}};
  }
  if (task == "digits") {
    return {{"task", task},
            {"input", {{"shape", parsed("input_shape")}}},
            {"normalize", {{"scale", parsed("scale")}, {"mean", parsed("mean")}, {"std", parsed("std")}}},
            {"labels", parsed("labels")}};
  }
  return {{"task", task}};
}

void check_model_name(const std::string& name) {
  const bool safe = !name.empty() && name.size() <= 256 &&
                    name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
                        std::string::npos &&
                    name != "." && name != "..";
  if (!safe) throw UsageError("--server-model '" + name + "': expected letters, digits, '_', '.' or '-'");
}

}  // namespace

LoadedModel load_remote_model(const std::string& url, const std::string& name, const RemoteOptions& options) {
  check_model_name(name);
  HttpClient client(url, options);
  wait_until_ready(client, name);
  const std::string where = "Triton model '" + name + "' at " + client.base_url();
  const HttpReply reply = client.get("/v2/models/" + name + "/config");
  if (reply.status != 200) throw ModelError(where + " has no readable config: " + error_text(reply));
  LoadedModel loaded;
  loaded.path = "triton:" + client.base_url() + "/" + name;
  loaded.format = ModelFormat::Triton;
  try {
    const json config = json::parse(reply.body);
    const json& in = config.at("input").at(0);
    const json& out = config.at("output").at(0);
    const auto kserve = [](const json& t) { return t.at("data_type").get<std::string>().substr(5); };  // TYPE_FP32
    loaded.metadata = metadata_from(config.value("parameters", json::object()), where);
    loaded.model = std::make_shared<TritonModel>(
        std::move(client), name, TensorInfo{in.at("name").get<std::string>(), kserve(in)},
        TensorInfo{out.at("name").get<std::string>(), kserve(out)}, config.value("max_batch_size", std::int64_t{0}));
  } catch (const json::exception& e) {
    throw ModelError(where + " has incomplete jitvision parameters or tensors in its config: " + e.what());
  } catch (const std::out_of_range& e) {
    throw ModelError(where + " has a tensor type it does not name: " + e.what());
  }
  return loaded;
}

}  // namespace jitvision::remote
