#pragma once
// Puts items numbered 0, 1, 2, ... back in that order when they arrive out of order (several inference workers
// finish frames in any order; the output must follow capture order).
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

namespace jitvision::app {

template <typename T>
class InOrder {
 public:
  void add(std::int64_t seq, T item) { pending_.emplace(seq, std::move(item)); }

  // The next item in order, if it has arrived.
  std::optional<T> next() {
    const auto it = pending_.find(next_);
    if (it == pending_.end()) return std::nullopt;
    T item = std::move(it->second);
    pending_.erase(it);
    ++next_;
    return item;
  }

  // The earliest item held, skipping any gap before it: for when nothing more will arrive (a frame lost to a
  // failure or a stop leaves a gap for good).
  std::optional<T> next_skipping_gap() {
    if (pending_.empty()) return std::nullopt;
    next_ = pending_.begin()->first;
    return next();
  }

 private:
  std::map<std::int64_t, T> pending_;
  std::int64_t next_ = 0;
};

}  // namespace jitvision::app
