#pragma once
#include <string>

namespace jitvision::app {

// Path of a model shipped with jitvision: $JITVISION_MODELS_DIR, then models/ beside the build or install tree,
// then the source tree's models/. Returns the first that exists, else the first candidate (for the error message).
std::string bundled_model_path(const std::string& file_name);

}  // namespace jitvision::app
