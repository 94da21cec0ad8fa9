#pragma once
// The HTTP requests the Triton client makes, through libcurl: a GET or a POST against one server, retried with
// back-off while the server cannot be reached. No torch headers.
#include <cstddef>
#include <string>
#include <string_view>

#include "jitvision/remote/triton_model.hpp"

namespace jitvision::remote {

struct UploadBody;  // a POST's body (http_client.cpp)

struct HttpReply {
  long status = 0;
  std::string body;
  std::size_t limit = 0;   // RemoteOptions::max_reply_bytes
  bool oversized = false;  // the server sent more than `limit`: the transfer was cut
  // The KServe binary tensor extension: the length of the JSON header at the start of `body`; -1 when the reply
  // has no Inference-Header-Content-Length header (all JSON).
  long long json_length = -1;
};

class HttpClient {
 public:
  // `url`: http://host:port or host:port (http is assumed); UsageError for another scheme or an empty host.
  HttpClient(const std::string& url, const RemoteOptions& options);
  const std::string& base_url() const { return base_; }
  const RemoteOptions& options() const { return options_; }

  HttpReply get(const std::string& path) const;
  // POSTs `json` followed by `binary` bytes; with binary bytes, sets Inference-Header-Content-Length to the JSON's
  // length.
  HttpReply post(const std::string& path, std::string_view json, std::string_view binary = {}) const;

 private:
  // body: nullptr for a GET.
  HttpReply request(const std::string& path, UploadBody* body) const;
  std::string base_;
  RemoteOptions options_;
};

// Sleeps the back-off pause before retry `attempt` (0-based): 0.2 s doubling, at most 2 s.
void back_off(int attempt);

}  // namespace jitvision::remote
