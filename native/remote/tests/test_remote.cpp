// load_remote_model without a server: the URL and name checks, and the retry budget against a closed port. The
// round trips with a real Triton server are in tests/test_triton_server.py.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "error_message.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/remote/triton_model.hpp"
#include "loopback_http.hpp"

namespace jitvision::remote {
namespace {

using testutil::message_of;

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

TEST(LoadRemoteModel, AReplyOverTheLimitIsCutAndRefused) {
  // A 200 whose body (1 MiB) goes on far past the client's limit.
  testutil::LoopbackHttpServer server([](const testutil::HttpRequest&) {
    return testutil::HttpResponse{200, {}, std::string(1 << 20, 'x')};
  });
  RemoteOptions options;
  options.retries = 0;
  options.max_reply_bytes = 64 * 1024;
  const std::string url = server.url();
  EXPECT_EQ(message_of<InferenceServerError>([&] { load_remote_model(url, "m", options); }),
            "inference server http://" + url + " sent a reply to /v2/models/m/ready of more than 65536 bytes; refused");
}

}  // namespace
}  // namespace jitvision::remote
