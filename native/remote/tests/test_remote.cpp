// load_remote_model without a server: the URL and name checks, and the retry budget against a closed port. The
// round trips with a real Triton server are in tests/test_triton_server.py.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "jitvision/core/errors.hpp"
#include "jitvision/remote/triton_model.hpp"

namespace jitvision::remote {
namespace {

template <typename E>
std::string message_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const E& e) {
    return e.what();
  }
  return "no exception";
}

TEST(LoadRemoteModel, RefusesAnotherSchemeAndAnUnsafeModelName) {
  EXPECT_EQ(message_of<UsageError>([] { load_remote_model("ftp://host:8000", "m"); }),
            "--server ftp://host:8000: expected http://host:port or host:port");
  EXPECT_EQ(message_of<UsageError>([] { load_remote_model("http://", "m"); }), "--server http://: no host");
  for (const char* name : {"", "..", "a/b", "a?b", "a b"}) {
    EXPECT_EQ(message_of<UsageError>([&] { load_remote_model("127.0.0.1:1", name); }),
              "--server-model '" + std::string(name) + "': expected letters, digits, '_', '.' or '-'");
  }
}

TEST(LoadRemoteModel, AClosedPortIsAnInferenceServerErrorAfterTheRetries) {
  const auto start = std::chrono::steady_clock::now();
  // Port 1 on the loopback: refused at once, so the time is the back-off (0.2 + 0.4 s).
  EXPECT_EQ(message_of<InferenceServerError>([] {
              load_remote_model("127.0.0.1:1/", "m", {1000, 1000, 2});
            }),
            "inference server http://127.0.0.1:1 unreachable after 2 retries: Couldn't connect to server");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(seconds, 0.6);
  EXPECT_LT(seconds, 10.0);
  EXPECT_EQ(static_cast<int>(InferenceServerError("x").code()), 8);
}

// A loopback server that answers one request with a 200 whose body (`bytes` of 'x') goes on past any sane size.
class EndlessReplyServer {
 public:
  explicit EndlessReplyServer(std::size_t bytes) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(listener_, 1) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on the loopback");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, bytes] { serve(bytes); });
  }
  ~EndlessReplyServer() {
    thread_.join();
    ::close(listener_);
  }
  int port() const { return port_; }

 private:
  void serve(std::size_t bytes) const {
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    char request[4096];
    (void)::recv(client, request, sizeof request, 0);
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(bytes) + "\r\n\r\n";
    (void)::send(client, head.data(), head.size(), MSG_NOSIGNAL);
    const std::string chunk(4096, 'x');
    for (std::size_t sent = 0; sent < bytes; sent += chunk.size()) {
      if (::send(client, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;  // the client hung up: good
    }
    ::close(client);
  }
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(LoadRemoteModel, AReplyOverTheLimitIsCutAndRefused) {
  EndlessReplyServer server(1 << 20);
  RemoteOptions options;
  options.retries = 0;
  options.max_reply_bytes = 64 * 1024;
  const std::string url = "127.0.0.1:" + std::to_string(server.port());
  EXPECT_EQ(message_of<InferenceServerError>([&] { load_remote_model(url, "m", options); }),
            "inference server http://" + url + " sent a reply to /v2/models/m/ready of more than 65536 bytes; refused");
}

}  // namespace
}  // namespace jitvision::remote
