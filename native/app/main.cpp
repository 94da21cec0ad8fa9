// jitvision: TorchScript models from PyTorch training to real-time C++ inference.
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>
#include <opencv2/core/version.hpp>

#include "commands.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/io/image_file.hpp"

namespace {

void print_version() {
  const auto rt = jitvision::runtime_info();
  std::cout << "jitvision " << JITVISION_VERSION << "\n"
            << "LibTorch " << rt.libtorch_version << "\n"
            << "OpenCV " << CV_VERSION << "\n"
            << "CUDA available: " << (rt.cuda_available ? "yes" : "no");
  if (rt.cuda_available) std::cout << " (" << rt.cuda_device_count << " device(s))";
  std::cout << "\nCPU threads: " << rt.cpu_threads << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  using jitvision::ExitCode;
  // A closed stdout pipe must become a write error we report, not a silent death by SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  jitvision::io::quiet_opencv_logging();

  CLI::App app{"jitvision: run TorchScript models exported from PyTorch on images, video, cameras and streams"};
  app.name("jitvision");
  bool version = false;
  app.add_flag("--version", version, "Print the jitvision, LibTorch and OpenCV versions and whether CUDA is usable");
  jitvision::app::DigitsOptions digits;
  auto* digits_cmd = jitvision::app::add_digits_command(app, digits);
  jitvision::app::DetectOptions detect;
  auto* detect_cmd = jitvision::app::add_detect_command(app, detect);
  jitvision::app::InfoOptions info;
  auto* info_cmd = jitvision::app::add_info_command(app, info);
  jitvision::app::BenchOptions bench;
  auto* bench_cmd = jitvision::app::add_bench_command(app, bench);
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    jitvision::app::report_error(std::string(e.what()) + " (see jitvision --help)");
    return static_cast<int>(ExitCode::Usage);
  }

  try {
    if (version) {
      print_version();
      return 0;
    }
    if (*digits_cmd) return jitvision::app::run_digits(digits);
    if (*detect_cmd) return jitvision::app::run_detect(detect);
    if (*info_cmd) return jitvision::app::run_info(info);
    if (*bench_cmd) return jitvision::app::run_bench(bench);
    std::cerr << app.help();
    return static_cast<int>(ExitCode::Usage);
  } catch (const jitvision::Error& e) {
    jitvision::app::report_error(e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    jitvision::app::report_error(std::string("LibTorch: ") + e.what_without_backtrace());
    return static_cast<int>(ExitCode::Internal);
  } catch (const std::exception& e) {
    jitvision::app::report_error(e.what());
    return static_cast<int>(ExitCode::Internal);
  }
}
