// Detection inside your own program: load a YOLOv5 TorchScript detector with the jitvision core, run it on one
// image and print the detections as one JSON object ({"detections": [...]}, the fields of `jitvision detect --json`).
#include <iostream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "jitvision/core/detector.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/image.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: embed MODEL.torchscript IMAGE\n";
    return 2;
  }
  try {
    const cv::Mat image = cv::imread(argv[2], cv::IMREAD_COLOR);  // 8-bit BGR, what the detector takes
    if (image.empty()) throw jitvision::InputError(std::string("cannot read image ") + argv[2]);
    const auto device = jitvision::resolve_device(jitvision::DeviceChoice::Auto);
    jitvision::Detector detector(jitvision::load_model(argv[1]), device, jitvision::DetectorOptions{});
    const jitvision::ImageView view{image.data, image.rows, image.cols, image.channels(), image.step};
    const auto detections = detector.infer(detector.prepare(jitvision::as_tensor(view)));

    auto out = nlohmann::json::array();
    for (const auto& d : detections) {
      out.push_back({{"cls", d.cls},
                     {"name", detector.contract().names.at(d.cls)},
                     {"conf", d.conf},
                     {"xyxy", {d.x1, d.y1, d.x2, d.y2}}});
    }
    std::cout << nlohmann::json{{"detections", out}}.dump() << "\n";
    return 0;
  } catch (const jitvision::Error& e) {
    std::cerr << "embed: error: " << e.what() << "\n";
    return static_cast<int>(e.code());
  }
}
