// `jitvision digits`: one handwritten digit per image, read by an MNIST-trained TorchScript model.
#include <iomanip>
#include <iostream>
#include <optional>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "detect_flags.hpp"
#include "failure.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/digits.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_file.hpp"
#include "jitvision/io/inputs.hpp"
#include "jitvision/remote/triton_model.hpp"
#include "json_text.hpp"
#include "paths.hpp"

namespace jitvision::app {
namespace {

ImageView view_of(const cv::Mat& m) {
  return ImageView{m.data, m.rows, m.cols, m.channels(), static_cast<std::size_t>(m.step[0])};
}

void print_result(const std::string& source, const DigitResult& r, bool json) {
  if (json) {
    nlohmann::json line{
        {"source", escape_invalid_utf8(source)}, {"digit", r.digit}, {"prob", r.prob}, {"probs", r.probs}};
    std::cout << line.dump() << '\n';
  } else {
    std::cout << source << ": " << r.digit << " (prob " << std::fixed << std::setprecision(4) << r.prob << ")\n";
  }
}

// The classifier: the --model file (or the bundled one), or the --server model.
LoadedModel digit_model(const DigitsOptions& o, const std::string& model_path) {
  const auto& live = o.live;
  if (live.server.empty() != live.server_model.empty()) {
    throw UsageError(live.server_model.empty() ? "--server needs --server-model NAME"
                                               : "--server-model needs --server");
  }
  if (live.server.empty()) return load_model(model_path, {live.trust_model});
  if (!o.model.empty()) throw UsageError("--model and --server exclude each other: give one");
  return remote::load_remote_model(live.server, live.server_model,
                                   {live.open_timeout_ms, live.server_timeout_ms, live.reconnect});
}

// Live mode (--source): the detect pipeline with the digit detector and the digit reader.
int run_live_digits(const DigitsOptions& o) {
  if (!o.inputs.empty()) throw UsageError("give either digit images or --source (live mode), not both");
  if (!o.live.server.empty()) throw UsageError("--server applies to digit images only, not to live mode (--source)");
  DetectOptions live = o.live;
  live.model = o.detector.empty() ? bundled_model_path("digits_yolov5n.torchscript") : o.detector;
  live.reader_model = o.model.empty() ? bundled_model_path("mnist.torchscript") : o.model;
  live.device = o.device;
  live.json = o.json ? "-" : "";
  return run_detect(live);
}

// Image mode needs inputs, and refuses the live-mode options it would silently ignore.
void check_image_mode(const DigitsOptions& o) {
  if (o.inputs.empty()) throw UsageError("nothing to read: give digit images, directories or globs, or --source");
  for (const auto* option : o.live_only) {
    if (option->count() > 0) {
      throw UsageError(option->get_name() + " applies to live mode (--source) only, not to digit images");
    }
  }
}

// One image's normalized digit, or nullopt with its error reported: whatever one image does (missing, corrupt, a
// bomb, no ink to find), the others are still read.
std::optional<torch::Tensor> read_digit(const io::InputPath& item, std::int64_t max_pixels) {
  if (!item.error.empty()) {
    report_error(item.error);
    return std::nullopt;
  }
  try {
    const cv::Mat image = io::read_image_bgr(item.path, max_pixels);
    return normalize_digit(as_tensor(view_of(image)));
  } catch (...) {
    const std::string why = failure_of(std::current_exception()).message;
    report_error(why + (why.find(item.path) == std::string::npos ? " (" + item.path + ")" : ""));
    return std::nullopt;
  }
}

// Digits waiting for one forward pass; flush() classifies them and prints the results in input order.
class DigitBatch {
 public:
  DigitBatch(const DigitClassifier& classifier, std::string model_name, bool json)
      : classifier_(classifier), model_name_(std::move(model_name)), json_(json) {}

  void add(std::string source, torch::Tensor digit) {
    sources_.push_back(std::move(source));
    digits_.push_back(std::move(digit));
  }
  std::size_t size() const { return digits_.size(); }

  void flush() {
    if (digits_.empty()) return;
    const auto results = run_model([&] { return classifier_.classify(torch::stack(digits_)); },
                                   [&] { return "the digit model " + model_name_ + " failed"; });
    for (std::size_t i = 0; i < results.size(); ++i) print_result(sources_[i], results[i], json_);
    check_stdout();
    sources_.clear();
    digits_.clear();
  }

 private:
  const DigitClassifier& classifier_;
  std::string model_name_;
  bool json_;
  std::vector<std::string> sources_;
  std::vector<torch::Tensor> digits_;
};

}  // namespace

CLI::App* add_digits_command(CLI::App& app, DigitsOptions& o) {
  auto* cmd = app.add_subcommand("digits", "Recognise a handwritten digit in each image (photos or MNIST-style crops)");
  cmd->add_option("--model", o.model, "TorchScript digit classifier (default: the bundled models/mnist.torchscript)");
  add_server_options(cmd, o.live);  // digit images only: the classifier's forward on a Triton server
  cmd->add_option("--device", o.device, "Where to run: auto (CUDA if available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_flag("--json", o.json, R"(One JSON object per line: {"source", "digit", "prob", "probs"})");
  cmd->add_option("--batch", o.batch, "Images per forward pass")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("inputs", o.inputs, "Image files, directories (their images, sorted) or quoted globs ('dir/*.png')");
  cmd->add_option(
      "--source", o.live.sources,
      "Live mode: read every digit in video frames, cameras, streams or scenes (any detect source); repeatable");
  const std::size_t image_mode_options = cmd->get_options().size();
  cmd->add_option("--detector", o.detector,
                  "Live mode: digit detector (default: the bundled models/digits_yolov5n.torchscript)");
  add_stream_options(cmd, o.live);
  // The options image mode would silently ignore: live mode's, but for those image mode uses too.
  const auto options = cmd->get_options();
  for (std::size_t i = image_mode_options; i < options.size(); ++i) {
    const std::string name = options[i]->get_name();
    if (name != "--trust-model" && name != "--max-pixels" && name != "--threads" && name != "--dtype")
      o.live_only.push_back(options[i]);
  }
  return cmd;
}

int run_digits(const DigitsOptions& o) {
  if (!o.live.sources.empty()) return run_live_digits(o);
  check_image_mode(o);
  if (o.live.threads > 0) at::set_num_threads(o.live.threads);
  const auto device = resolve_device(parse_device_choice(o.device));
  const std::string model_path = o.model.empty() ? bundled_model_path("mnist.torchscript") : o.model;
  LoadedModel loaded = digit_model(o, model_path);
  const std::string model_name = loaded.path;  // the file, or triton:URL/NAME
  const DigitClassifier classifier(std::move(loaded), device, resolve_precision_flags(o.live.dtype, false, device));
  DigitBatch batch(classifier, model_name, o.json);
  bool input_failed = false;
  for (const auto& item : io::expand_image_inputs(o.inputs)) {
    auto digit = read_digit(item, o.live.max_pixels);
    if (!digit) {
      input_failed = true;
      continue;
    }
    batch.add(item.path, std::move(*digit));
    if (static_cast<int>(batch.size()) >= o.batch) batch.flush();
  }
  batch.flush();
  return static_cast<int>(input_failed ? ExitCode::Input : ExitCode::Ok);
}

}  // namespace jitvision::app
