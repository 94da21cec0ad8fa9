// Unit tests for the model firewall: the name scanners, hostile modules, the bundled models, broken archives.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "error_message.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/firewall.hpp"
#include "jitvision/core/model.hpp"
#include "temp_files.hpp"

namespace jitvision {
namespace {

namespace fs = std::filesystem;

// A scripted module whose forward writes into `marker` through torch.from_file, saved to a temp file.
fs::path hostile_model(const fs::path& marker) {
  torch::jit::Module module("Hostile");
  module.define("def forward(self, x):\n  t = torch.from_file('" + marker.string() +
                "', True, 16, dtype=0)\n  return x + torch.sum(torch.fill_(t, 65))\n");
  const auto path = testutil::temp_path("firewall-hostile.pt");
  module.save(path.string());
  return path;
}

TEST(Firewall, CodeNamesSkipStringsCommentsAndAttributes) {
  const auto names = code_names(
      "x = torch . from_file('torch.no')\n# torch.comment\ny = \"\"\"ops.no\"\"\"\nz = self.torch.save(x)\n"
      "w = ops.myns.op(1.5, torch)\n");
  EXPECT_EQ(names, (std::vector<std::string>{"torch.from_file", "ops.myns.op", "torch"}));
}

TEST(Firewall, PickleGlobalsNameEveryImport) {
  EXPECT_EQ(pickle_globals(std::string("\x80\x02"
                                       "cos\nsystem\n)R.",
                                       17)),
            (std::vector<std::string>{"pickle:os.system"}));
  EXPECT_EQ(pickle_globals(std::string("\x80\x04\x8c\x02os\x8c\x06system\x93.", 16)),
            (std::vector<std::string>{"pickle:STACK_GLOBAL"}));
  // A length of 2^64 - 11 must not wrap the reader around to where it started (an endless loop).
  EXPECT_EQ(pickle_globals(std::string("\x80\x02\x8d\xf5\xff\xff\xff\xff\xff\xff\xff.", 12)),
            (std::vector<std::string>{"pickle:<malformed pickle>"}));
  EXPECT_EQ(pickle_globals("\x80\x02"
                           "cos\nsys"),
            (std::vector<std::string>{"pickle:<malformed pickle>"}));
}

TEST(Firewall, BundledModelsPass) {
  for (const auto* name : {"mnist.torchscript", "digits_yolov5n.torchscript"}) {
    EXPECT_NO_THROW(check_model(std::string(JITVISION_TEST_MODELS_DIR) + "/" + name, false)) << name;
  }
}

TEST(Firewall, HostileModelIsRefusedBeforeItRunsAndLoadsWhenTrusted) {
  const auto marker = testutil::temp_path("firewall-marker");
  const auto path = hostile_model(marker);
  const auto message = testutil::message_of<ModelError>([&] { load_model(path.string()); });
  EXPECT_NE(message.find("torch.from_file"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_FALSE(fs::exists(marker));
  EXPECT_NO_THROW(load_model(path.string(), LoadOptions{true}));
  EXPECT_FALSE(fs::exists(marker));  // loading ran nothing; only forward would
  fs::remove(path);
}

// Truncated copies and random byte flips of a bundled model: ModelError or a result, never a crash or another
// exception type.
TEST(Firewall, BrokenArchivesGiveModelErrors) {
  std::ifstream in(std::string(JITVISION_TEST_MODELS_DIR) + "/mnist.torchscript", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto path = testutil::temp_path("firewall-broken.pt");
  std::mt19937 rng(7);
  int refused = 0;
  for (int i = 0; i < 200; ++i) {
    std::string bytes = good;
    if (i % 2 == 0) {
      bytes.resize(rng() % bytes.size());
    } else {
      for (int k = 0; k < 8; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    testutil::write_file(path, bytes);
    try {
      used_names(path.string());
    } catch (const ModelError&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 100);
  fs::remove(path);
}

}  // namespace
}  // namespace jitvision
