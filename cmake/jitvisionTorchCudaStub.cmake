# Include before find_package(Torch). The CUDA builds of LibTorch (the pip wheel) insist on a CUDA toolkit in their
# CMake files. jitvision compiles no CUDA code and includes no CUDA header, so an empty torch::cudart makes them skip
# the toolkit search; the core loads libtorch_cuda at run time (or links it, JITVISION_LAZY_CUDA=OFF), so the same
# binary uses a GPU wherever a driver provides one.
# Set JITVISION_USE_CUDA_TOOLKIT=ON (or define torch::cudart yourself) to let LibTorch look for the toolkit.
if(NOT JITVISION_USE_CUDA_TOOLKIT AND NOT TARGET torch::cudart)
  add_library(torch::cudart INTERFACE IMPORTED)
endif()
