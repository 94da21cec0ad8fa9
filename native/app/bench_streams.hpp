#pragma once
// `jitvision bench --streams N --video FILE`: N concurrent copies of the video through the real detect pipeline,
// once batched across streams (--batch B, default auto) and once with --batch 1, in the same process.
#include <iosfwd>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "jitvision/core/precision.hpp"

namespace jitvision::app {

// The combinations CLI11 cannot check (UsageError): --batch 1 is the baseline itself.
void check_streams_options(const BenchOptions& o);

// Both pipeline runs (no outputs, quiet) and what they measured: total steady throughput, each stream's processed
// rate (min/mean/max and the largest deviation from the mean), and the batched/unbatched throughput ratio.
nlohmann::json bench_streams(const BenchOptions& o, std::optional<Precision> precision, const InferenceForm& form);

// The human-readable lines of bench_streams' result.
void print_streams_text(std::ostream& os, const nlohmann::json& streams);

}  // namespace jitvision::app
