#include "digit_reader.hpp"

#include <algorithm>
#include <cmath>

#include "jitvision/core/errors.hpp"
#include "jitvision/core/image.hpp"

namespace jitvision::app {

std::vector<DigitResult> read_digits(const DigitClassifier& reader, const cv::Mat& frame, const Detections& dets) {
  std::vector<DigitResult> reads(dets.size());
  std::vector<torch::Tensor> crops;
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < dets.size(); ++i) {
    const auto& d = dets[i];
    const float mx = 0.2f * (d.x2 - d.x1), my = 0.2f * (d.y2 - d.y1);
    const int x1 = std::clamp(static_cast<int>(std::floor(d.x1 - mx)), 0, frame.cols);
    const int y1 = std::clamp(static_cast<int>(std::floor(d.y1 - my)), 0, frame.rows);
    const int x2 = std::clamp(static_cast<int>(std::ceil(d.x2 + mx)), 0, frame.cols);
    const int y2 = std::clamp(static_cast<int>(std::ceil(d.y2 + my)), 0, frame.rows);
    if (x2 - x1 < 2 || y2 - y1 < 2) continue;
    const cv::Mat crop = frame(cv::Rect(x1, y1, x2 - x1, y2 - y1));
    try {
      crops.push_back(
          normalize_digit(as_tensor(ImageView{crop.data, crop.rows, crop.cols, crop.channels(), crop.step[0]})));
      which.push_back(i);
    } catch (const InputError&) {
      // blank crop: leave this detection unread
    }
  }
  if (!crops.empty()) {
    const auto results = reader.classify(torch::stack(crops));
    for (std::size_t k = 0; k < which.size(); ++k) reads[which[k]] = results[k];
  }
  return reads;
}

}  // namespace jitvision::app
