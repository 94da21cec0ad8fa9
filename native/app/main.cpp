// jitvision: TorchScript models from PyTorch training to real-time C++ inference. The app is the jitvision_app
// library (native/app); this is only its entry point.
#include "cli.hpp"

int main(int argc, char** argv) { return jitvision::app::run_cli(argc, argv); }
