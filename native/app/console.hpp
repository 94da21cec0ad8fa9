#pragma once
// The per-frame console lines of `jitvision detect`, in the official detector's format, on stderr:
//   image 1/2 /data/bus.jpg: 640x480 4 persons, 1 bus, 23.7ms
//   video 2/2 (3/120) /data/clip.mp4: 384x640 (no detections), 21.0ms
//   stream 1/1 rtsp://cam/1 (frame 57): 384x640 1 person, 20.4ms
// i/n numbers the items of all --source arguments (each image file, video file or live source); HxW is the model
// input the frame was letterboxed to; the time is the forward pass's. On a terminal, a video file whose frame count
// is known also gets a progress line under them, redrawn in place: frames done/total, FPS and ETA.
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "jitvision/core/timing.hpp"
#include "pipeline.hpp"

namespace jitvision::app {

class ConsoleLog {
 public:
  // `sources`: the --source arguments (to number their items); `progress`: draw the progress line (a terminal).
  ConsoleLog(std::ostream& out, const std::vector<std::string>& sources, std::vector<std::string> names, bool progress);
  // One result's line (and the progress line).
  void frame(const Result& r);
  // Clears the progress line, if one is drawn.
  void finish();

 private:
  struct Item {
    int number = 0;
    bool video_file = false;
    bool live = false;
    std::int64_t frame_count = 0;  // video files; 0: unknown
    std::int64_t first_frame = -1;
    Stopwatch since_first;
  };
  Item& item_of(const std::string& source);
  std::string counts(const Detections& detections) const;
  std::string progress_line(const Item& item, const Result& r) const;

  std::ostream& out_;
  std::vector<std::string> names_;
  bool progress_;
  int total_items_ = 0;
  std::map<std::string, Item> items_;
  bool progress_shown_ = false;
};

}  // namespace jitvision::app
