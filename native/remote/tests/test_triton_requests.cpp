// The requests the Triton client sends, counted and read back by a loopback server that plays a Triton server with
// one small detector ("m": 64x64, one class, answers every frame with two empty rows).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "jitvision/core/detector.hpp"
#include "jitvision/remote/triton_model.hpp"
#include "loopback_http.hpp"

namespace jitvision::remote {
namespace {

using testutil::HttpRequest;
using testutil::HttpResponse;
using testutil::LoopbackHttpServer;

const char* const kConfig = R"({
  "name": "m", "max_batch_size": 0,
  "input": [{"name": "images", "data_type": "TYPE_FP32", "dims": [1, 3, 64, 64]}],
  "output": [{"name": "output0", "data_type": "TYPE_FP32", "dims": [1, 2, 6]}],
  "parameters": {
    "jitvision.task": {"string_value": "detect"}, "jitvision.dynamic": {"string_value": "false"},
    "jitvision.letterbox": {"string_value": "square"}, "jitvision.stride": {"string_value": "32"},
    "jitvision.img_size": {"string_value": "64"}, "jitvision.names": {"string_value": "[\"digit\"]"}}})";

// Two rows [1, 2, 6] of zeros (no detection), as the KServe binary tensor extension sends them.
HttpResponse infer_reply() {
  const std::string rows(2 * 6 * sizeof(float), '\0');
  const std::string header = nlohmann::json{{"model_name", "m"},
                                            {"outputs",
                                             {{{"name", "output0"},
                                               {"datatype", "FP32"},
                                               {"shape", {1, 2, 6}},
                                               {"parameters", {{"binary_data_size", rows.size()}}}}}}}
                                 .dump();
  return {200, {{"Inference-Header-Content-Length", std::to_string(header.size())}}, header + rows};
}

HttpResponse fake_triton(const HttpRequest& request) {
  if (request.path == "/v2/models/m/ready") return {200, {}, ""};
  if (request.path == "/v2/models/m/config") return {200, {}, kConfig};
  if (request.path == "/v2/models/m/infer") return infer_reply();
  return {404, {}, R"({"error": "no such endpoint"})"};
}

std::vector<HttpRequest> infer_requests(const LoopbackHttpServer& server) {
  std::vector<HttpRequest> found;
  for (const auto& r : server.requests()) {
    if (r.path == "/v2/models/m/infer") found.push_back(r);
  }
  return found;
}

// The request's JSON header and that the binary part that follows it is exactly `input`'s bytes.
void expect_tensor_body(const HttpRequest& request, const torch::Tensor& input) {
  ASSERT_EQ(request.method, "POST");
  const std::size_t json_length = std::stoul(request.headers.at("inference-header-content-length"));
  ASSERT_EQ(request.body.size(), json_length + input.nbytes());
  const auto header = nlohmann::json::parse(request.body.substr(0, json_length));
  EXPECT_EQ(header["inputs"][0]["name"], "images");
  EXPECT_EQ(header["inputs"][0]["shape"], nlohmann::json(input.sizes().vec()));
  EXPECT_EQ(header["inputs"][0]["parameters"]["binary_data_size"], input.nbytes());
  EXPECT_EQ(std::memcmp(request.body.data() + json_length, input.data_ptr(), input.nbytes()), 0);
}

TEST(TritonRequests, ADetectorSendsNoWarmUpForwardsToTheServer) {
  LoopbackHttpServer server(fake_triton);
  Detector detector(load_remote_model(server.url(), "m"), torch::kCPU, {});
  const auto frame = torch::zeros({48, 64, 3}, torch::kUInt8);
  EXPECT_TRUE(detector.infer(detector.prepare(frame)).empty());
  EXPECT_TRUE(detector.infer(detector.prepare(frame)).empty());
  // One request per frame: a local model's two warm-up forwards per new input shape would be two more here.
  EXPECT_EQ(infer_requests(server).size(), 2u);
}

TEST(TritonRequests, TheBodyIsTheJsonHeaderThenTheTensorBytes) {
  LoopbackHttpServer server(fake_triton);
  const auto loaded = load_remote_model(server.url(), "m");
  const auto input = torch::rand({1, 3, 64, 64});
  const auto out = loaded.model->forward(input);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].sizes(), torch::IntArrayRef({1, 2, 6}));
  const auto sent = infer_requests(server);
  ASSERT_EQ(sent.size(), 1u);
  expect_tensor_body(sent[0], input);
}

TEST(TritonRequests, TheBodyIsSentWholeAgainAfterTheServerDropsAKeptAliveConnection) {
  LoopbackHttpServer server(fake_triton, /*drop_reused=*/true);
  const auto loaded = load_remote_model(server.url(), "m");
  const auto first = torch::rand({1, 3, 64, 64}), second = torch::rand({1, 3, 64, 64});
  loaded.model->forward(first);
  loaded.model->forward(second);
  const auto sent = infer_requests(server);
  ASSERT_EQ(sent.size(), 2u);
  expect_tensor_body(sent[0], first);
  expect_tensor_body(sent[1], second);
  EXPECT_GE(server.connections(), 4);  // ready, config and each infer on a connection of its own
}

}  // namespace
}  // namespace jitvision::remote
