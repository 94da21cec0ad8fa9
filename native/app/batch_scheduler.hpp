#pragma once
// Between the capture threads (one per source) and the inference workers: every source has its own lane, and a
// worker takes a batch of ready frames, at most one per source, round-robin so that no source starves.
//
// - Files, directories and globs push() with back-pressure: a full lane blocks its capture thread, nothing is skipped.
// - Live sources push_latest(): a full lane (a slot of `live_depth` frames) gives up its oldest frame for the new one,
//   so a slow model never lags behind the camera; the replaced frame is reported as dropped.
// - take() never waits for a batch to fill: it returns as soon as one frame is ready, with whatever else is ready
//   (latency stays bounded by one forward). The batch starts at the source after the last one served, or at a source
//   that was ready but could not join the previous batch (a different input shape), which therefore goes first.
// - take() numbers the frames it hands out 0, 1, 2, ... in dispatch order: the output puts results back in that order
//   (InOrder), so every source's frames come out in its own order.
// Thread-safe.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace jitvision::app {

template <typename T>
class BatchScheduler {
 public:
  struct Item {
    std::int64_t seq = 0;  // dispatch order over all sources
    int source = 0;
    T value;
  };
  enum class Pushed { Queued, Replaced, Closed };

  explicit BatchScheduler(std::size_t depth = 2, std::size_t live_depth = 1) : depth_(depth), live_depth_(live_depth) {}

  // The number of sources; take() ends once every one of them has finished (or close()) and all is handed out.
  void open(int sources) {
    std::lock_guard lock(mutex_);
    lanes_.assign(static_cast<std::size_t>(sources), Lane{});
  }

  // Back-pressure: blocks while the source's lane is full. False when closed (the item is dropped).
  bool push(int source, T item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || lane(source).items.size() < depth_; });
    if (closed_) return false;
    lane(source).items.push_back(std::move(item));
    ready_.notify_one();
    return true;
  }

  // Latest frame: never blocks; a full lane drops its oldest frame (Replaced).
  Pushed push_latest(int source, T item) {
    std::lock_guard lock(mutex_);
    if (closed_) return Pushed::Closed;
    auto& items = lane(source).items;
    const bool replaced = items.size() >= live_depth_;
    if (replaced) items.pop_front();
    items.push_back(std::move(item));
    ready_.notify_one();
    return replaced ? Pushed::Replaced : Pushed::Queued;
  }

  // The source will push nothing more.
  void finish(int source) {
    std::lock_guard lock(mutex_);
    lane(source).finished = true;
    ready_.notify_all();
  }

  // Pushes fail from now on (and blocked ones return false); what is waiting is still handed out.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    ready_.notify_all();
    not_full_.notify_all();
  }

  // Blocks until a frame is ready, then takes up to `max` ready frames, at most one per source, round-robin; the
  // first frame taken decides the batch: another source's frame joins only when joins(first, frame). Empty once
  // every source has finished (or the scheduler is closed) and nothing is waiting: the end.
  template <typename Joins>
  std::vector<Item> take(std::size_t max, Joins&& joins) {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return any_ready() || done(); });
    std::vector<Item> batch;
    const std::size_t n = lanes_.size();
    std::optional<std::size_t> passed_over, last;
    for (std::size_t k = 0; k < n && batch.size() < std::max<std::size_t>(max, 1); ++k) {
      const std::size_t s = (next_ + k) % n;
      auto& items = lanes_[s].items;
      if (items.empty()) continue;
      if (!batch.empty() && !joins(batch.front().value, items.front())) {
        if (!passed_over) passed_over = s;
        continue;
      }
      batch.push_back(Item{0, static_cast<int>(s), std::move(items.front())});
      items.pop_front();
      last = s;
    }
    for (auto& item : batch) item.seq = seq_++;
    if (passed_over) {
      next_ = *passed_over;
    } else if (last) {
      next_ = (*last + 1) % n;
    }
    if (!batch.empty()) not_full_.notify_all();
    return batch;
  }

  // Closed or every source finished, and nothing waiting.
  bool drained() const {
    std::lock_guard lock(mutex_);
    return done() && !any_ready();
  }

 private:
  struct Lane {
    std::deque<T> items;
    bool finished = false;
  };

  // A source beyond open()'s count gets a lane of its own (open() is optional for a single source).
  Lane& lane(int source) {
    const auto s = static_cast<std::size_t>(source);
    if (s >= lanes_.size()) lanes_.resize(s + 1);
    return lanes_[s];
  }
  bool any_ready() const {
    for (const auto& l : lanes_)
      if (!l.items.empty()) return true;
    return false;
  }
  bool done() const {
    if (closed_) return true;
    for (const auto& l : lanes_)
      if (!l.finished) return false;
    return true;  // also with no source at all
  }

  std::size_t depth_, live_depth_;
  mutable std::mutex mutex_;
  std::condition_variable ready_, not_full_;
  std::vector<Lane> lanes_;
  std::size_t next_ = 0;  // the source the next batch starts at
  std::int64_t seq_ = 0;
  bool closed_ = false;
};

}  // namespace jitvision::app
