// Unit tests for the CPU capability check behind `--dtype bf16`.
#include <gtest/gtest.h>

#include <sstream>

#include "jitvision/core/device.hpp"

namespace jitvision {
namespace {

bool has_bf16(const std::string& text) {
  std::istringstream in(text);
  return cpuinfo_has_bf16(in);
}

TEST(CpuBf16, FlagsNamingBf16UnitsAreAccepted) {
  EXPECT_TRUE(has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n"));
  EXPECT_TRUE(has_bf16("flags\t\t: fpu avx512f amx_tile amx_bf16 amx_int8\n"));
}

TEST(CpuBf16, CpusWithoutThemAreRefused) {
  EXPECT_FALSE(has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"));
  EXPECT_FALSE(has_bf16("flags : avx512_bf16x avx512bf16\n"));  // whole words only
  EXPECT_FALSE(has_bf16(""));
}

}  // namespace
}  // namespace jitvision
