#pragma once
// Per-stage timing statistics (medians and percentiles, never means: this kind of machine has random spikes).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace jitvision {

class TimingStats {
 public:
  void add(double ms) { samples_.push_back(ms); }
  std::size_t count() const { return samples_.size(); }
  double percentile(double p) const {
    if (samples_.empty()) return 0.0;
    auto s = samples_;
    std::sort(s.begin(), s.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(s.size())));
    return s[std::clamp<std::size_t>(rank, 1, s.size()) - 1];
  }
  double median() const {
    if (samples_.empty()) return 0.0;
    auto s = samples_;
    std::sort(s.begin(), s.end());
    const auto n = s.size();
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  }
  double min() const { return samples_.empty() ? 0.0 : *std::min_element(samples_.begin(), samples_.end()); }
  const std::vector<double>& samples() const { return samples_; }

 private:
  std::vector<double> samples_;
};

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double elapsed_ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }
  void restart() { start_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace jitvision
