#pragma once
// A model served by a Triton Inference Server (KServe v2 over HTTP, binary tensor extension), behind the one model
// interface (jitvision::Model), so Detector and the whole detect pipeline run unchanged: frames are letterboxed,
// decoded and NMS'd locally, only the forward goes to the server. The client is libcurl (triton_client.cpp).
#include <cstddef>
#include <string>

#include "jitvision/core/model.hpp"

namespace jitvision::remote {

struct RemoteOptions {
  int connect_timeout_ms = 10000;  // per connection attempt
  int request_timeout_ms = 30000;  // per request, transfer included
  // Attempts after a failed connection (refused, reset, timed out), with doubling back-off from 0.2 s (at most 2 s
  // per pause); then InferenceServerError. The same budget applies at start-up and to every later request.
  int retries = 5;
  // The most one reply may hold: far above any real output (a 640x640 detector at batch 8 answers with 69 MB), small
  // enough that a server which streams without end cannot take the client's memory; InferenceServerError beyond it.
  std::size_t max_reply_bytes = std::size_t{1} << 30;
};

// Asks the server at `url` (http://host:port or host:port) for model `name`: ready, then its config. The returned
// LoadedModel has format Triton, path "triton:<url>/<name>", a TritonModel as its model and, as metadata, our
// jitvision.json rebuilt from the config's `jitvision.*` parameters (written by `python -m jitvision triton export`),
// so read_contract() says what it does. Throws InferenceServerError (exit code 8) when the server stays unreachable
// or the model stays not ready within the retry budget, ModelError when the server has no such model or its config
// carries no jitvision parameters.
LoadedModel load_remote_model(const std::string& url, const std::string& name, const RemoteOptions& options = {});

}  // namespace jitvision::remote
