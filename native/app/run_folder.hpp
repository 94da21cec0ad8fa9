#pragma once
// Run folders that never overwrite each other, the rule of python/jitvision/runs.py (docs/yolov5.md, "Training run
// folders"): with `exist_ok` the folder is PROJECT/NAME whether or not it exists; otherwise the first of
// PROJECT/NAME, PROJECT/NAME2, PROJECT/NAME3, ... that does not exist yet, created atomically.
#include <string>

namespace jitvision::app {

// Creates and returns the folder the rule picks. Throws OutputError when it cannot be created.
std::string new_run_dir(const std::string& project, const std::string& name, bool exist_ok);

}  // namespace jitvision::app
