#pragma once
// One detected object, in the pixel coordinates of the original frame. Plain data: the io layer draws these
// without seeing LibTorch.
#include <vector>

namespace jitvision {

struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // corners, clamped to the frame
  float conf = 0;                        // objectness x class probability
  int cls = 0;                           // class index into the model's names
};

using Detections = std::vector<Detection>;

}  // namespace jitvision
