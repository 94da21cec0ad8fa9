#include "jitvision/io/inputs.hpp"

#include <glob.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>

namespace jitvision::io {
namespace {

namespace fs = std::filesystem;

bool is_pattern(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> glob_paths(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

bool has_extension_in(const std::string& path, const std::vector<std::string>& extensions) {
  auto ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::binary_search(extensions.begin(), extensions.end(), ext);
}

// One named file: anything but a regular file (after symlinks) is refused here, because reading a FIFO or a
// character device such as /dev/zero would block or never end.
InputPath file_entry(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    const bool loop = ec == std::errc::too_many_symbolic_link_levels;
    return {path, "image " + path + (loop ? " is a symlink loop" : " does not exist")};
  }
  if (!fs::is_regular_file(path, ec)) return {path, "image " + path + " is not a regular file"};
  return {path, ""};
}

}  // namespace

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> kExtensions{".bmp", ".jp2", ".jpeg", ".jpg",  ".pbm", ".pgm",
                                                    ".png", ".ppm", ".tif",  ".tiff", ".webp"};
  return kExtensions;
}

const std::vector<std::string>& video_extensions() {
  static const std::vector<std::string> kExtensions{".avi", ".flv",  ".gif", ".m4v", ".mjpeg", ".mkv", ".mov",
                                                    ".mp4", ".mpeg", ".mpg", ".ts",  ".webm",  ".wmv"};
  return kExtensions;
}

bool has_image_extension(const std::string& path) { return has_extension_in(path, image_extensions()); }

bool has_video_extension(const std::string& path) { return has_extension_in(path, video_extensions()); }

namespace {

// A directory's image (and, with include_videos, video) files, sorted; or one entry saying why there are none.
void expand_directory(const std::string& dir, bool include_videos, std::vector<InputPath>& out) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto name = entry.path().string();
    if (entry.is_regular_file(ec) && (has_image_extension(name) || (include_videos && has_video_extension(name)))) {
      files.push_back(name);
    }
  }
  if (ec) {
    out.push_back({dir, "cannot list directory " + dir + ": " + ec.message()});
    return;
  }
  if (files.empty()) {
    out.push_back({dir, "directory " + dir +
                            (include_videos ? " contains no image or video files" : " contains no image files")});
    return;
  }
  std::sort(files.begin(), files.end());
  for (auto& f : files) out.push_back({std::move(f), ""});
}

// The files a glob pattern matches, or one entry saying that none does.
void expand_pattern(const std::string& pattern, std::vector<InputPath>& out) {
  const auto matches = glob_paths(pattern);
  if (matches.empty()) out.push_back({pattern, "no files match " + pattern});
  for (const auto& m : matches) out.push_back(file_entry(m));
}

}  // namespace

std::vector<InputPath> expand_image_inputs(const std::vector<std::string>& arguments, bool include_videos) {
  std::vector<InputPath> out;
  for (const auto& arg : arguments) {
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      expand_directory(arg, include_videos, out);
    } else if (!fs::exists(arg, ec) && is_pattern(arg)) {
      expand_pattern(arg, out);
    } else {
      out.push_back(file_entry(arg));
    }
  }
  return out;
}

}  // namespace jitvision::io
