// Unit tests for model_format(): the two formats jitvision runs told apart by content, foreign ones named, and an
// AOTInductor package refused unless trusted.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "error_message.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/model.hpp"
#include "jitvision/core/model_format.hpp"
#include "temp_files.hpp"

namespace jitvision {
namespace {

namespace fs = std::filesystem;

fs::path write_bytes(const std::string& name, const std::string& bytes) {
  return testutil::write_file(testutil::temp_path("format-" + name), bytes);
}

// A zip archive as torch writes them (every record under "<archive>/").
fs::path write_archive(const std::string& name, const std::map<std::string, std::string>& records) {
  const auto path = testutil::temp_path("format-" + name);
  {
    caffe2::serialize::PyTorchStreamWriter writer(path.string());
    for (const auto& [record, data] : records) writer.writeRecord(record, data.data(), data.size());
    writer.writeEndOfFile();
  }
  return path;
}

TEST(ModelFormatTest, BundledModelsAreTorchScript) {
  EXPECT_EQ(model_format(JITVISION_TEST_MODELS_DIR "/mnist.torchscript"), ModelFormat::TorchScript);
  EXPECT_EQ(to_string(ModelFormat::Pt2), "pt2");
}

TEST(ModelFormatTest, ACompiledPackageIsPt2AndRefusedUnlessTrusted) {
  const auto path = write_archive("model.bin", {{"archive_format", "pt2"}, {"data/aotinductor/model/x.so", "so"}});
  EXPECT_EQ(model_format(path.string()), ModelFormat::Pt2);
  const auto message = testutil::message_of<ModelError>([&] { load_model(path.string()); });
  EXPECT_NE(message.find("AOTInductor package (.pt2)"), std::string::npos) << message;
  EXPECT_NE(message.find("--trust-model"), std::string::npos) << message;
  fs::remove(path);
}

TEST(ModelFormatTest, AnUncompiledExportProgramIsNamed) {
  const auto path = write_archive("program.pt2", {{"archive_format", "pt2"}, {"models/model.json", "{}"}});
  EXPECT_NE(testutil::message_of<ModelError>([&] {
              model_format(path.string());
            }).find("a torch.export program (.pt2) without"),
            std::string::npos);
  fs::remove(path);
}

TEST(ModelFormatTest, ForeignSignaturesAreNamed) {
  const std::map<std::string, std::string> cases{
      {std::string("\x08\x08\x12\x07pytorch", 10), "an ONNX model"},
      {std::string("\x80\x02\x8a\x0a", 4), "a legacy (non-zip) torch.save() pickle"},
      {std::string("\x02\0\0\0\0\0\0\0{}", 10), "a safetensors weights file"},
      {std::string("GGUF\x03\0\0\0", 8), "a GGUF (llama.cpp) model"},
      {std::string("\x1c\0\0\0TFL3", 8), "a TensorFlow Lite model"},
  };
  for (const auto& [bytes, words] : cases) {
    const auto path = write_bytes("foreign.bin", bytes);
    const auto message = testutil::message_of<ModelError>([&] { model_format(path.string()); });
    EXPECT_NE(message.find(" is " + words), std::string::npos) << words << ": " << message;
    fs::remove(path);
  }
}

TEST(ModelFormatTest, UnknownBytesAreLeftToTheLoader) {
  const auto path = write_bytes("noise.bin", "just some text, not a model");
  EXPECT_EQ(model_format(path.string()), ModelFormat::TorchScript);
  EXPECT_NE(testutil::message_of<ModelError>([&] { load_model(path.string()); }).find("is not a TorchScript archive"),
            std::string::npos);
  fs::remove(path);
}

}  // namespace
}  // namespace jitvision
