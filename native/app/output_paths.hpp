#pragma once
// Outputs never destroy inputs: before any output is opened, every output path is checked against the sources, the
// models and the other outputs (symlinks followed, hard links compared by identity).
#include <string>
#include <vector>

namespace jitvision::app {

// The outputs of one run, by their command-line flag; empty: not asked for. A JSON path of "-" is standard output.
struct OutputPaths {
  std::string json;        // --json FILE
  std::string save_video;  // --save-video FILE
  std::string save_dir;    // --save-dir DIR
};

// Throws UsageError (one line naming both paths) when an output resolves to a source file (directories and globs
// expanded), a model or another output, when --save-dir is a source directory being read (a directory or a glob's
// folder) or inside one, or when --save-dir is the folder of an image source (its copy would keep the name).
// Sources that are not files (cameras, URLs, pipelines) are skipped.
void check_output_paths(const std::vector<std::string>& sources, const std::vector<std::string>& models,
                        const OutputPaths& outputs);

// Throws UsageError (one line naming the file and --overwrite) when --json or --save-video names an existing,
// non-empty regular file and `overwrite` (--overwrite) is not set: results of an earlier run are not replaced
// silently. Empty files and non-regular ones (/dev/null, a pipe) are written as usual.
void check_no_overwrite(const OutputPaths& outputs, bool overwrite);

}  // namespace jitvision::app
