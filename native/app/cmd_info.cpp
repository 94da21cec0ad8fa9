// `jitvision info`: what a TorchScript file promises: its forward signature, metadata and, for detectors, the
// input contract jitvision will use; with --graph also the TorchScript IR of forward.
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "failure.hpp"
#include "jitvision/core/contract.hpp"
#include "jitvision/core/errors.hpp"
#include "jitvision/core/model.hpp"
#include "jitvision/core/official_export.hpp"
#include "json_text.hpp"

namespace jitvision::app {

CLI::App* add_info_command(CLI::App& app, InfoOptions& o) {
  auto* cmd = app.add_subcommand("info", "Print a model's format, contract and metadata");
  cmd->add_option("model", o.model, "TorchScript file or .pt2 package")->required();
  cmd->add_flag("--json", o.json, "Print one JSON object instead of text");
  add_trust_model_flag(cmd, o.trust_model);
  cmd->add_flag("--graph", o.graph,
                "Also print the TorchScript IR of forward: its graph (submodule calls inlined) and its code "
                "(with --json: the fields \"graph\" and \"code\")");
  return cmd;
}

namespace {

nlohmann::json contract_json(const DetectorContract& c) {
  return {{"origin", c.origin},
          {"dynamic", c.dynamic},
          {"letterbox", c.letterbox == LetterboxMode::Rect ? "rect" : "square"},
          {"stride", c.stride},
          {"input", c.dynamic ? nlohmann::json("[B, 3, H, W] with H, W multiples of the stride")
                              : nlohmann::json({1, 3, c.input_h, c.input_w})},
          {"output", "rows [B, N, " + std::to_string(c.names.size() + 5) + "]"},
          {"classes", c.names.size()},
          {"fp32_head", c.fp32_head}};  // "": cannot run with --dtype bf16
}

// Everything `info` prints, as the --json object.
nlohmann::json model_info(LoadedModel& model, bool graph) {
  nlohmann::json info{{"path", escape_invalid_utf8(model.path)},
                      {"format", to_string(model.format)},
                      {"parameters", model.parameter_count}};
  if (model.format == ModelFormat::TorchScript && model.module.find_method("forward")) {
    info["forward"] = c10::str(model.module.get_method("forward").function().getSchema());
  }
  info["weights_dtype"] = c10::toString(stored_dtype(model));
  auto contract = read_contract(model);
  probe_contract(model, contract);  // an official export's config.txt does not say whether it is dynamic
  info["kind"] = to_string(contract.kind);
  info["task"] = contract.task.empty() ? "unknown" : contract.task;
  if (!model.metadata.is_null()) info["metadata"] = model.metadata;
  if (!model.official_config.is_null()) info["config.txt"] = model.official_config;
  if (contract.detector) info["contract"] = contract_json(*contract.detector);
  if (graph) {
    const auto ir = forward_ir(model);
    info["graph"] = ir.graph;
    info["code"] = ir.code;
  }
  return info;
}

void print_info_text(const nlohmann::json& info, const LoadedModel& model, bool graph) {
  std::cout << "model:      " << model.path << "\n"
            << "format:     " << info["format"].get<std::string>() << "\n"
            << "kind:       " << info["kind"].get<std::string>() << "\n"
            << "task:       " << info["task"].get<std::string>() << "\n"
            << "parameters: " << model.parameter_count << "\n";
  if (info.contains("forward")) std::cout << "forward:    " << info["forward"].get<std::string>() << "\n";
  if (info.contains("contract")) std::cout << "contract:   " << info["contract"].dump(2) << "\n";
  if (info.contains("metadata")) std::cout << "metadata (jitvision.json): " << model.metadata.dump(2) << "\n";
  if (info.contains("config.txt")) std::cout << "config.txt: " << model.official_config.dump() << "\n";
  if (graph) {
    std::cout << "\ngraph (forward, inlined):\n"
              << info["graph"].get<std::string>() << "\ncode (forward):\n"
              << info["code"].get<std::string>();
  }
}

}  // namespace

int run_info(const InfoOptions& o) {
  auto model = load_model(o.model, {o.trust_model});
  const nlohmann::json info = model_info(model, o.graph);
  if (o.json) {
    std::cout << info.dump() << std::endl;
  } else {
    print_info_text(info, model, o.graph);
  }
  check_stdout();
  return 0;
}

}  // namespace jitvision::app
