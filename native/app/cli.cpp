#include "cli.hpp"

#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>
#include <opencv2/core/version.hpp>

#include "commands.hpp"
#include "failure.hpp"
#include "jitvision/core/device.hpp"
#include "jitvision/core/version.hpp"
#include "jitvision/io/image_file.hpp"
#include "jitvision/io/inputs.hpp"

namespace jitvision::app {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

struct Commands {
  DigitsOptions digits;
  DetectOptions detect;
  InfoOptions info;
  BenchOptions bench;
  CLI::App* digits_cmd = nullptr;
  CLI::App* detect_cmd = nullptr;
  CLI::App* info_cmd = nullptr;
  CLI::App* bench_cmd = nullptr;
};

int run_chosen(const CLI::App& app, const Commands& c) {
  if (*c.digits_cmd) return run_digits(c.digits);
  if (*c.detect_cmd) return run_detect(c.detect);
  if (*c.info_cmd) return run_info(c.info);
  if (*c.bench_cmd) return run_bench(c.bench);
  std::cerr << app.help();
  return static_cast<int>(ExitCode::Usage);
}

// The help that documents the option a parse error is about: the subcommand's when one was named.
std::string help_command(const Commands& c) {
  for (const CLI::App* cmd : {c.digits_cmd, c.detect_cmd, c.info_cmd, c.bench_cmd}) {
    if (cmd->parsed() > 0) return "jitvision " + cmd->get_name() + " --help";
  }
  return "jitvision --help";
}

}  // namespace

void print_version(std::ostream& out) {
  const auto rt = runtime_info();
  out << "jitvision " << JITVISION_VERSION << "\n"
      << "LibTorch " << rt.libtorch_version << "\n"
      << "OpenCV " << CV_VERSION << "\n"
      << "CUDA available: " << (rt.cuda_available ? "yes" : "no");
  if (rt.cuda_available) out << " (" << rt.cuda_device_count << " device(s))";
  out << "\nCUDA backend: " << rt.cuda_backend;
  out << "\nCPU threads: " << rt.cpu_threads << "\n"
      << "image extensions: " << joined(io::image_extensions()) << "\n"
      << "video extensions: " << joined(io::video_extensions()) << "\n";
}

int run_cli(int argc, char** argv) {
  // A closed stdout pipe must become a write error we report, not a silent death by SIGPIPE; likewise a file that
  // reaches the file size limit (ulimit -f) must fail its write (EFBIG), not kill the process with SIGXFSZ.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
  io::quiet_opencv_logging();

  CLI::App app{"jitvision: run TorchScript models exported from PyTorch on images, video, cameras and streams"};
  app.name("jitvision");
  bool version = false;
  app.add_flag(
      "--version", version,
      "Print the jitvision, LibTorch and OpenCV versions, whether CUDA is usable and the file extensions read");
  bool verbose = false;
  app.add_flag("--verbose", verbose, "Model runtime errors print LibTorch's whole message (the TorchScript traceback)");
  Commands c;
  c.digits_cmd = add_digits_command(app, c.digits);
  c.detect_cmd = add_detect_command(app, c.detect);
  c.info_cmd = add_info_command(app, c.info);
  c.bench_cmd = add_bench_command(app, c.bench);
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    report_error(std::string(e.what()) + " (see " + help_command(c) + ")");
    return static_cast<int>(ExitCode::Usage);
  }
  set_verbose(verbose);
  try {
    if (version) {
      print_version(std::cout);
      check_stdout();
      return 0;
    }
    return run_chosen(app, c);
  } catch (...) {
    const Failure f = failure_of(std::current_exception());
    report_error(f.message);
    return static_cast<int>(f.code);
  }
}

}  // namespace jitvision::app
