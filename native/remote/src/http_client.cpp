#include "http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "jitvision/core/errors.hpp"

namespace jitvision::remote {

// A POST body read by libcurl straight from its two pieces (the JSON header, then the tensor's bytes), so a frame
// is not copied into one joined buffer first. `offset` is where the next read starts; libcurl seeks back to 0 when it
// sends the request again on a fresh connection.
struct UploadBody {
  std::string_view json, binary;
  std::size_t offset = 0;
  std::size_t size() const { return json.size() + binary.size(); }
};

namespace {

struct CurlDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// One handle per thread, reused so its connection to the server stays open between requests.
CURL* thread_handle() {
  static std::once_flag global;
  std::call_once(global, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  thread_local std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
  if (!handle) throw InferenceServerError("libcurl cannot create a connection handle");
  curl_easy_reset(handle.get());
  return handle.get();
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* reply = static_cast<HttpReply*>(user);
  if (reply->body.size() + size * count > reply->limit) {
    reply->oversized = true;
    return 0;  // libcurl ends the transfer (CURLE_WRITE_ERROR)
  }
  reply->body.append(data, size * count);
  return size * count;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  const std::string_view line(data, size * count);
  constexpr std::string_view key = "inference-header-content-length:";
  if (line.size() > key.size()) {
    std::string head(line.substr(0, key.size()));
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
    if (head == key) {
      try {
        static_cast<HttpReply*>(user)->json_length = std::stoll(std::string(line.substr(key.size())));
      } catch (const std::exception&) {  // left at -1: the reply is then read as not binary and refused
      }
    }
  }
  return size * count;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<UploadBody*>(user);
  const std::size_t room = size * count;
  std::size_t written = 0, at = body->offset;
  for (const std::string_view piece : {body->json, body->binary}) {
    if (at >= piece.size()) {
      at -= piece.size();
      continue;
    }
    const std::size_t n = std::min(room - written, piece.size() - at);
    std::memcpy(buffer + written, piece.data() + at, n);
    written += n;
    at = 0;
  }
  body->offset += written;
  return written;
}

int on_seek(void* user, curl_off_t offset, int origin) {
  auto* body = static_cast<UploadBody*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::size_t>(offset) > body->size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  body->offset = static_cast<std::size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// The request headers and body of a POST; with binary bytes, Inference-Header-Content-Length is the JSON's length.
curl_slist* set_body(CURL* h, UploadBody& body) {
  curl_slist* list = curl_slist_append(nullptr, "Expect:");  // no 100-continue round trip for large bodies
  const bool binary = !body.binary.empty();
  list = curl_slist_append(list, binary ? "Content-Type: application/octet-stream" : "Content-Type: application/json");
  if (binary) {
    list = curl_slist_append(list, ("Inference-Header-Content-Length: " + std::to_string(body.json.size())).c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(h, CURLOPT_READDATA, &body);
  curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
  curl_easy_setopt(h, CURLOPT_SEEKDATA, &body);
  body.offset = 0;
  return list;
}

// A failure worth retrying: the server is not (yet, or any more) there.
bool connection_failure(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return true;
    default:
      return false;
  }
}

std::string normalised_url(const std::string& url) {
  std::string base = url.find("://") == std::string::npos ? "http://" + url : url;
  const auto scheme_end = base.find("://");
  while (base.size() > scheme_end + 3 && base.back() == '/') base.pop_back();
  const std::string scheme = base.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw UsageError("--server " + url + ": expected http://host:port or host:port");
  }
  if (base.size() == scheme_end + 3) throw UsageError("--server " + url + ": no host");
  return base;
}

}  // namespace

void back_off(int attempt) {
  const double pause_s = std::min(2.0, 0.2 * static_cast<double>(1 << std::min(attempt, 4)));
  std::this_thread::sleep_for(std::chrono::duration<double>(pause_s));
}

HttpClient::HttpClient(const std::string& url, const RemoteOptions& options)
    : base_(normalised_url(url)), options_(options) {}

HttpReply HttpClient::get(const std::string& path) const { return request(path, nullptr); }

HttpReply HttpClient::post(const std::string& path, std::string_view json, std::string_view binary) const {
  UploadBody body{json, binary};
  return request(path, &body);
}

HttpReply HttpClient::request(const std::string& path, UploadBody* body) const {
  const std::string url = base_ + path;
  for (int attempt = 0;; ++attempt) {
    CURL* h = thread_handle();
    HttpReply reply;
    reply.limit = options_.max_reply_bytes;
    std::unique_ptr<curl_slist, SlistDeleter> headers;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &reply);
    if (body) headers.reset(set_body(h, *body));
    const CURLcode code = curl_easy_perform(h);
    if (reply.oversized) {
      throw InferenceServerError("inference server " + base_ + " sent a reply to " + path + " of more than " +
                                 std::to_string(options_.max_reply_bytes) + " bytes; refused");
    }
    if (code == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
      return reply;
    }
    if (!connection_failure(code) || attempt >= options_.retries) {
      throw InferenceServerError("inference server " + base_ + " unreachable" +
                                 (attempt > 0 ? " after " + std::to_string(attempt) + " retries" : std::string()) +
                                 ": " + curl_easy_strerror(code));
    }
    back_off(attempt);
  }
}

}  // namespace jitvision::remote
