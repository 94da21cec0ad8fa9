#pragma once
#include <string>

namespace jitvision::app {

// Path of a model shipped with jitvision: $JITVISION_MODELS_DIR, then models/ beside the build tree's binary
// (<build>/../models), then the install tree's <prefix>/share/jitvision/models. Returns the first that exists, else
// the first candidate (for the error message). No source path is compiled in.
std::string bundled_model_path(const std::string& file_name);

}  // namespace jitvision::app
