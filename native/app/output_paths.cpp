#include "output_paths.hpp"

#include <filesystem>
#include <utility>

#include "jitvision/core/errors.hpp"
#include "jitvision/io/inputs.hpp"
#include "jitvision/io/sources.hpp"

namespace jitvision::app {
namespace {

namespace fs = std::filesystem;

fs::path resolved(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? fs::absolute(path).lexically_normal() : p;
}

// The same file or directory: the same resolved path, or (for existing ones) the same inode, which also catches
// hard links and bind mounts.
bool same(const std::string& a, const std::string& b) {
  if (resolved(a) == resolved(b)) return true;
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

// `inner` is `outer` or a path below it (both resolved).
bool within(const std::string& inner, const std::string& outer) {
  if (same(inner, outer)) return true;
  const fs::path base = resolved(outer);
  fs::path p = resolved(inner);
  while (p.has_relative_path()) {
    p = p.parent_path();
    if (p == base) return true;
  }
  return false;
}

bool is_glob(const std::string& spec) { return spec.find_first_of("*?[") != std::string::npos; }

std::string folder_of(const std::string& file) {
  const fs::path parent = fs::path(file).parent_path();
  return parent.empty() ? "." : parent.string();
}

struct SourcePaths {
  std::vector<std::string> files;
  std::vector<std::string> read_dirs;  // directories read whole: --save-dir may be neither these nor inside them
  std::vector<std::string> images;     // single image files: --save-dir may not be their folder
};

SourcePaths source_paths(const std::vector<std::string>& sources) {
  SourcePaths out;
  for (const auto& spec : sources) {
    const auto kind = io::classify_source(spec);
    if (kind != io::SourceKind::ImageFiles && kind != io::SourceKind::VideoFile) continue;
    std::error_code ec;
    const bool dir = fs::is_directory(spec, ec);
    if (dir) out.read_dirs.push_back(spec);
    if (is_glob(spec) && !is_glob(folder_of(spec))) out.read_dirs.push_back(folder_of(spec));
    for (const auto& item : io::expand_image_inputs({spec}, true)) {
      // An input refused as not a regular file (a FIFO, a device) is still one no output may be written to.
      if (!item.error.empty() && (fs::is_directory(item.path, ec) || !fs::exists(item.path, ec))) continue;
      out.files.push_back(item.path);
      if (dir || is_glob(spec)) {
        out.read_dirs.push_back(folder_of(item.path));
      } else if (kind == io::SourceKind::ImageFiles) {
        out.images.push_back(item.path);
      }
    }
  }
  return out;
}

[[noreturn]] void refuse(const std::string& flag, const std::string& path, const std::string& why) {
  throw UsageError(flag + " " + path + " " + why + "; choose another path");
}

}  // namespace

void check_output_paths(const std::vector<std::string>& sources, const std::vector<std::string>& models,
                        const OutputPaths& outputs) {
  std::vector<std::pair<std::string, std::string>> files;  // flag, path
  if (!outputs.json.empty() && outputs.json != "-") files.emplace_back("--json", outputs.json);
  if (!outputs.save_video.empty()) files.emplace_back("--save-video", outputs.save_video);
  if (!outputs.save_dir.empty()) files.emplace_back("--save-dir", outputs.save_dir);
  const SourcePaths src = source_paths(sources);
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& [flag, path] = files[i];
    for (const auto& model : models) {
      if (!model.empty() && same(path, model)) refuse(flag, path, "is the model " + model);
    }
    std::error_code ec;
    if (fs::exists(path, ec)) {  // sources exist: a new output is none of them (saves resolving every file)
      for (const auto& file : src.files) {
        if (same(path, file)) refuse(flag, path, "is the source " + file);
      }
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (same(path, files[j].second)) refuse(flag, path, "is also " + files[j].first + " " + files[j].second);
    }
  }
  if (outputs.save_dir.empty()) return;
  for (const auto& dir : src.read_dirs) {
    if (within(outputs.save_dir, dir)) refuse("--save-dir", outputs.save_dir, "is in the source directory " + dir);
  }
  for (const auto& image : src.images) {
    if (same(outputs.save_dir, folder_of(image))) {
      refuse("--save-dir", outputs.save_dir, "is the folder of the source " + image + " (its copy keeps the name)");
    }
  }
}

void check_no_overwrite(const OutputPaths& outputs, bool overwrite) {
  if (overwrite) return;
  const std::pair<const char*, const std::string*> files[] = {{"--json", &outputs.json},
                                                              {"--save-video", &outputs.save_video}};
  for (const auto& [flag, path] : files) {
    if (path->empty() || *path == "-") continue;
    std::error_code ec;
    const auto status = fs::status(*path, ec);
    if (ec || !fs::is_regular_file(status)) continue;
    const auto size = fs::file_size(*path, ec);
    if (ec || size == 0) continue;
    throw UsageError(std::string(flag) + " " + *path + " exists (" + std::to_string(size) +
                     " bytes); give --overwrite to replace it");
  }
}

}  // namespace jitvision::app
