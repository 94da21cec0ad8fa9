#pragma once
// The jitvision command line: parses argv, runs the chosen command and turns any exception into one error line
// and an exit code (README "Exit codes"). main() only calls this.
#include <iosfwd>

namespace jitvision::app {

int run_cli(int argc, char** argv);

// `jitvision --version`: versions, CUDA, CPU threads and the image and video file extensions the app reads.
void print_version(std::ostream& out);

}  // namespace jitvision::app
