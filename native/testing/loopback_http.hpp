// A small HTTP/1.1 server on the loopback for the gtest suites: it reads each request (headers and a Content-Length
// body), answers it with what the handler returns and keeps every request for the test to look at. Keep-alive
// connections are served, each on its own thread; requests with chunked bodies are not understood.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace jitvision::testutil {

struct HttpRequest {
  std::string method, path;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::map<std::string, std::string> headers;  // besides Content-Length
  std::string body;
};

class LoopbackHttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // drop_reused: a request that arrives on a connection which already served one is read and then the connection
  // is closed without an answer, as a server does when it times out an idle keep-alive connection.
  explicit LoopbackHttpServer(Handler handler, bool drop_reused = false)
      : handler_(std::move(handler)), drop_reused_(drop_reused) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on the loopback");
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_all(); });
  }

  ~LoopbackHttpServer() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    {
      std::lock_guard lock(mutex_);
      for (const int fd : clients_) ::shutdown(fd, SHUT_RDWR);  // wakes recv() on kept-alive connections
    }
    for (auto& t : connections_) t.join();
    for (const int fd : clients_) ::close(fd);
    ::close(listener_);
  }
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  std::string url() const { return "127.0.0.1:" + std::to_string(port_); }

  // The requests answered so far, in order (dropped ones are not listed).
  std::vector<HttpRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  void clear_requests() {
    std::lock_guard lock(mutex_);
    requests_.clear();
  }
  int connections() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(clients_.size());
  }

 private:
  void accept_all() {
    while (true) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard lock(mutex_);
      clients_.push_back(fd);
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string buffer;
    for (int served = 0;; ++served) {
      HttpRequest request;
      if (!read_request(fd, buffer, request)) break;
      if (drop_reused_ && served > 0) break;
      const HttpResponse response = handler_(request);
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(std::move(request));
      }
      if (!send_all(fd, serialise(response))) break;
    }
    ::shutdown(fd, SHUT_RDWR);  // the peer sees the close; the destructor closes the descriptor
  }

  // Reads one request from `fd` (bytes past it stay in `buffer`); false when the peer closed or sent garbage.
  static bool read_request(int fd, std::string& buffer, HttpRequest& request) {
    std::size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!receive(fd, buffer)) return false;
    }
    parse_head(buffer.substr(0, end), request);
    const auto length = request.headers.find("content-length");
    const std::size_t body_size = length == request.headers.end() ? 0 : std::stoul(length->second);
    buffer.erase(0, end + 4);
    while (buffer.size() < body_size) {
      if (!receive(fd, buffer)) return false;
    }
    request.body = buffer.substr(0, body_size);
    buffer.erase(0, body_size);
    return true;
  }

  static bool receive(int fd, std::string& buffer) {
    char chunk[65536];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  static void parse_head(const std::string& head, HttpRequest& request) {
    std::size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    request.method = first.substr(0, first.find(' '));
    request.path = first.substr(first.find(' ') + 1, first.rfind(' ') - first.find(' ') - 1);
    while (line_end != std::string::npos && line_end < head.size()) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      request.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }

  static std::string serialise(const HttpResponse& response) {
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " X\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    return out + "Content-Length: " + std::to_string(response.body.size()) + "\r\n\r\n" + response.body;
  }

  static bool send_all(int fd, const std::string& bytes) {
    for (std::size_t sent = 0; sent < bytes.size();) {
      const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  Handler handler_;
  bool drop_reused_;
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<int> clients_;
  std::vector<std::thread> connections_;
  std::vector<HttpRequest> requests_;
};

}  // namespace jitvision::testutil
