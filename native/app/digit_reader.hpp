#pragma once
// The live digit reader: reads the handwritten digit inside each detection of a frame.
#include <vector>

#include <opencv2/core/mat.hpp>

#include "jitvision/core/detection.hpp"
#include "jitvision/core/digits.hpp"

namespace jitvision::app {

// One result per detection. The crop, widened by 20% on each side so that its outer ring is paper (the ink box is
// found again inside it), is normalised MNIST-style and classified in one batch. A crop with no ink gets digit -1.
std::vector<DigitResult> read_digits(const DigitClassifier& reader, const cv::Mat& frame, const Detections& dets);

}  // namespace jitvision::app
