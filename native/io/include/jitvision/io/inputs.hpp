#pragma once
// Expanding command-line inputs (files, directories, globs) into an ordered list of image paths.
#include <string>
#include <vector>

namespace jitvision::io {

struct InputPath {
  std::string path;   // the file to read, or the argument that failed
  std::string error;  // non-empty when the argument yielded nothing usable (missing, empty directory, no match)
};

// Each argument in order: a directory gives its image files (and video files, with include_videos) sorted by name
// (not recursive), a pattern with *, ? or [ is expanded (sorted), anything else is taken as a file path. Problems
// become entries with `error` set, in place, so callers can report them without losing the order of the others.
std::vector<InputPath> expand_image_inputs(const std::vector<std::string>& arguments, bool include_videos = false);

// True for the file name extensions OpenCV's image codecs read.
bool has_image_extension(const std::string& path);

// True for the file name extensions read as videos (through FFmpeg): mp4, avi, mkv, mov, webm, m4v, mpg, mpeg, wmv,
// flv, ts, gif, mjpeg.
bool has_video_extension(const std::string& path);

}  // namespace jitvision::io
