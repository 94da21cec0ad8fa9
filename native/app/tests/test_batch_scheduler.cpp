// BatchScheduler without models or video: fairness, ordering, shape grouping, sources that end, close and drain.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "batch_scheduler.hpp"

namespace jitvision::app {
namespace {

using Scheduler = BatchScheduler<std::string>;
const auto any = [](const std::string&, const std::string&) { return true; };

std::vector<std::string> values(const std::vector<Scheduler::Item>& batch) {
  std::vector<std::string> out;
  for (const auto& item : batch) out.push_back(item.value);
  return out;
}

TEST(BatchScheduler, TakesAtMostOneFramePerSourceRoundRobin) {
  Scheduler s(2);
  s.open(3);
  for (const char* v : {"a0", "a1"}) ASSERT_TRUE(s.push(0, v));
  for (const char* v : {"b0", "b1"}) ASSERT_TRUE(s.push(1, v));
  for (const char* v : {"c0", "c1"}) ASSERT_TRUE(s.push(2, v));
  EXPECT_EQ(values(s.take(2, any)), (std::vector<std::string>{"a0", "b0"}));
  EXPECT_EQ(values(s.take(2, any)), (std::vector<std::string>{"c0", "a1"}));  // starts after the last served
  EXPECT_EQ(values(s.take(8, any)), (std::vector<std::string>{"b1", "c1"}));  // one per source, never more
}

TEST(BatchScheduler, NumbersFramesInDispatchOrderAndKeepsEachSourcesOrder) {
  Scheduler s(4);
  s.open(2);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.push(0, "a" + std::to_string(i)));
  ASSERT_TRUE(s.push(1, "b0"));
  std::vector<std::int64_t> seqs;
  std::vector<std::string> of_a;
  for (int i = 0; i < 3; ++i) {
    for (const auto& item : s.take(4, any)) {
      seqs.push_back(item.seq);
      if (item.source == 0) of_a.push_back(item.value);
    }
  }
  EXPECT_EQ(seqs, (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(of_a, (std::vector<std::string>{"a0", "a1", "a2"}));
}

TEST(BatchScheduler, NeverWaitsForABatchToFill) {
  Scheduler s(2);
  s.open(4);
  ASSERT_TRUE(s.push(2, "c0"));
  const auto batch = s.take(4, any);  // three sources have nothing: the one ready frame goes alone, at once
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].source, 2);
}

// Frames join a batch only when they fit the first one (the same input shape); a source passed over for that goes
// first in the next batch, so it cannot starve behind sources that keep filling batches of another shape.
TEST(BatchScheduler, APassedOverSourceGoesFirstNextTime) {
  Scheduler s(1);
  s.open(4);
  const auto same_shape = [](const std::string& a, const std::string& b) { return a[0] == b[0]; };
  int served_b = 0;
  for (int round = 0; round < 6; ++round) {
    for (int src : {0, 2, 3}) s.push_latest(src, "A" + std::to_string(round));
    s.push_latest(1, "B" + std::to_string(round));
    const auto batch = s.take(4, same_shape);
    ASSERT_FALSE(batch.empty());
    for (const auto& item : batch) EXPECT_EQ(item.value[0], batch.front().value[0]);
    if (batch.front().source == 1) ++served_b;
  }
  EXPECT_GE(served_b, 2);  // at least every other batch
}

TEST(BatchScheduler, ASourceThatEndsMidBatchLeavesTheOthersRunning) {
  Scheduler s(2);
  s.open(2);
  ASSERT_TRUE(s.push(0, "a0"));
  ASSERT_TRUE(s.push(0, "a1"));
  ASSERT_TRUE(s.push(1, "b0"));
  s.finish(1);  // b0 is still handed out
  EXPECT_EQ(values(s.take(4, any)), (std::vector<std::string>{"a0", "b0"}));
  EXPECT_EQ(values(s.take(4, any)), (std::vector<std::string>{"a1"}));
  EXPECT_FALSE(s.drained());  // source 0 has not finished
  s.finish(0);
  EXPECT_TRUE(s.drained());
  EXPECT_TRUE(s.take(4, any).empty());  // the end: no wait
}

TEST(BatchScheduler, TakeWaitsForAFrameOrTheEnd) {
  Scheduler s(2);
  s.open(2);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    s.push(1, "b0");
    s.finish(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    s.finish(0);
  });
  EXPECT_EQ(values(s.take(4, any)), (std::vector<std::string>{"b0"}));
  EXPECT_TRUE(s.take(4, any).empty());
  producer.join();
}

TEST(BatchScheduler, FilesGetBackPressureNotDrops) {
  Scheduler s(1);
  s.open(1);
  ASSERT_TRUE(s.push(0, "a0"));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    s.push(0, "a1");  // blocks: the lane is full
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pushed);
  EXPECT_EQ(values(s.take(1, any)), (std::vector<std::string>{"a0"}));
  producer.join();
  EXPECT_TRUE(pushed);
  EXPECT_EQ(values(s.take(1, any)), (std::vector<std::string>{"a1"}));
}

TEST(BatchScheduler, LiveSourcesKeepOnlyTheNewestFrame) {
  Scheduler s(2, 1);
  s.open(1);
  EXPECT_EQ(s.push_latest(0, "f0"), Scheduler::Pushed::Queued);
  EXPECT_EQ(s.push_latest(0, "f1"), Scheduler::Pushed::Replaced);
  EXPECT_EQ(s.push_latest(0, "f2"), Scheduler::Pushed::Replaced);
  EXPECT_EQ(values(s.take(4, any)), (std::vector<std::string>{"f2"}));
}

TEST(BatchScheduler, CloseFailsPushesAndDrainsWhatIsWaiting) {
  Scheduler s(1);
  s.open(2);
  ASSERT_TRUE(s.push(0, "a0"));
  std::thread blocked([&] { EXPECT_FALSE(s.push(0, "a1")); });  // woken by close()
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  s.close();
  blocked.join();
  EXPECT_FALSE(s.push(1, "b0"));
  EXPECT_EQ(s.push_latest(1, "b1"), Scheduler::Pushed::Closed);
  EXPECT_EQ(values(s.take(4, any)), (std::vector<std::string>{"a0"}));
  EXPECT_TRUE(s.drained());
  EXPECT_TRUE(s.take(4, any).empty());
}

}  // namespace
}  // namespace jitvision::app
