// The per-frame console lines (docs/detect.md, "Console"): the official detector's format.
#include <sstream>

#include <gtest/gtest.h>

#include "console.hpp"

using namespace jitvision;
using namespace jitvision::app;

namespace {

Result result(const std::string& source, std::int64_t index, Detections detections) {
  Result r;
  r.frame.source = source;
  r.frame.index = index;
  r.input_h = 384;
  r.input_w = 640;
  r.times.inference_ms = 20.44;
  r.detections = std::move(detections);
  return r;
}

}  // namespace

TEST(ConsoleLog, CountsPerClassInClassOrderWithPlurals) {
  std::ostringstream out;
  ConsoleLog log(out, {"rtsp://cam/1", "http://cam/2.mjpg"}, {"person", "bicycle", "bus"}, false);
  log.frame(result("rtsp://cam/1", 56, {{0, 0, 1, 1, 0.9f, 2}, {0, 0, 1, 1, 0.8f, 0}, {0, 0, 1, 1, 0.7f, 0}}));
  log.frame(result("http://cam/2.mjpg", 0, {}));
  log.frame(result("rtsp://cam/1", 57, {{0, 0, 1, 1, 0.9f, 7}}));  // an index the model does not name
  log.finish();
  EXPECT_EQ(out.str(),
            "stream 1/2 rtsp://cam/1 (frame 57): 384x640 2 persons, 1 bus, 20.4ms\n"
            "stream 2/2 http://cam/2.mjpg (frame 1): 384x640 (no detections), 20.4ms\n"
            "stream 1/2 rtsp://cam/1 (frame 58): 384x640 1 7, 20.4ms\n");
}
