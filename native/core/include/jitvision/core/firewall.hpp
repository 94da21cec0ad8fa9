#pragma once
// The model firewall: what a TorchScript archive would run, read without running anything (no torch headers).
//
// load_model() calls check_model() before torch::jit::load. It reads the zip archive itself (every record's
// declared size checked against a limit first), collects every qualified name the serialized code under code/ refers
// to (torch.conv2d, ops.prim.NumToTensor, torch.from_file) and every GLOBAL of its pickles, and throws ModelError
// naming the first one that is not on the allow-list of pure tensor operators. The list is
// python/jitvision/model_allowlist.txt, compiled in by CMake; Python applies the same rules (jitvision/firewall.py).
// docs/security.md has the threat model.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace jitvision {

// Setting this environment variable to 1 skips the check (with a warning), like LoadOptions::trust_model.
inline constexpr const char* kTrustModelEnv = "JITVISION_TRUST_MODEL";

// Qualified names rooted at a global namespace (torch, ops, math, builtins, CONSTANTS, __torch__) in TorchScript
// source, in order of appearance; a bare `torch` or `ops` is returned as it is.
std::vector<std::string> code_names(std::string_view source);
// "pickle:module.name" for every GLOBAL opcode; "pickle:STACK_GLOBAL" (also INST, OBJ, EXT*) and
// "pickle:<malformed pickle>" for what cannot be named statically. These are never on the allow-list.
std::vector<std::string> pickle_globals(std::string_view data);
// Every name the archive's code and pickles use, with the first record that uses it. ModelError when the file is
// not a zip archive or a record is over its size limit, duplicated, or lies about its size.
std::map<std::string, std::string> used_names(const std::string& path);
// The names of the archive's records (after the same header and size checks), for telling formats apart.
std::vector<std::string> archive_records(const std::string& path);
// The compiled-in allow-list.
const std::vector<std::string>& model_allowlist();
// Throws ModelError naming the first name outside the allow-list and its record. trust_model (or the environment
// variable) skips the check with one warning line on stderr.
void check_model(const std::string& path, bool trust_model);
// The archive's records are size-checked before anything reads them; exposed for the tests.
struct ArchiveLimits {
  static constexpr std::uint64_t code = 16ull << 20, pickle = 256ull << 20, extra = 1ull << 20, small = 4ull << 10,
                                 data = 16ull << 30, total = 32ull << 30, records = 100000;
};

}  // namespace jitvision
