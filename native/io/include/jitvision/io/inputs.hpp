#pragma once
// Expanding command-line inputs (files, directories, globs) into an ordered list of image paths.
#include <string>
#include <vector>

namespace jitvision::io {

struct InputPath {
  std::string path;   // the file to read, or the argument that failed
  std::string error;  // non-empty when the argument yielded nothing usable (missing, not a file, empty directory...)
};

// Each argument in order: a directory gives its image files (and video files, with include_videos) sorted by name
// (not recursive), a pattern with *, ? or [ is expanded (sorted), anything else is taken as a file path. Problems
// become entries with `error` set, in place, so callers can report them without losing the order of the others.
std::vector<InputPath> expand_image_inputs(const std::vector<std::string>& arguments, bool include_videos = false);

// The file name extensions read as images (OpenCV's image codecs) and as videos (FFmpeg): the one list of each,
// lower case with the dot, sorted. `jitvision --version` prints them; Python's jitvision.extensions holds the same
// lists (tests/test_python_errors.py compares them).
const std::vector<std::string>& image_extensions();
const std::vector<std::string>& video_extensions();

// True when the path's extension (any case) is in image_extensions() / video_extensions().
bool has_image_extension(const std::string& path);
bool has_video_extension(const std::string& path);

}  // namespace jitvision::io
