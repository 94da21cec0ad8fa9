// The pipeline's plumbing without models or video: the bounded queue between stages and the re-ordering of
// results that several inference workers finish out of order.
#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bounded_queue.hpp"
#include "in_order.hpp"

namespace jitvision::app {
namespace {

TEST(InOrder, PassesItemsThatArriveInOrder) {
  InOrder<std::string> in_order;
  in_order.add(0, "a");
  EXPECT_EQ(in_order.next(), "a");
  in_order.add(1, "b");
  EXPECT_EQ(in_order.next(), "b");
  EXPECT_EQ(in_order.next(), std::nullopt);
}

TEST(InOrder, HoldsLaterItemsUntilTheEarlierOnesArrive) {
  InOrder<std::string> in_order;
  in_order.add(2, "c");
  in_order.add(1, "b");
  EXPECT_EQ(in_order.next(), std::nullopt);  // 0 is still in a worker
  in_order.add(0, "a");
  EXPECT_EQ(in_order.next(), "a");
  EXPECT_EQ(in_order.next(), "b");
  EXPECT_EQ(in_order.next(), "c");
  EXPECT_EQ(in_order.next(), std::nullopt);
}

TEST(InOrder, SkipsAGapOnlyWhenAskedTo) {
  InOrder<std::string> in_order;
  in_order.add(0, "a");
  in_order.add(3, "d");
  in_order.add(2, "c");
  EXPECT_EQ(in_order.next(), "a");
  EXPECT_EQ(in_order.next(), std::nullopt);  // 1 was lost: next() keeps waiting for it
  EXPECT_EQ(in_order.next_skipping_gap(), "c");
  EXPECT_EQ(in_order.next(), "d");
  EXPECT_EQ(in_order.next_skipping_gap(), std::nullopt);
}

TEST(BoundedQueue, ConsumersDrainWhatIsLeftAfterClose) {
  BoundedQueue<int> queue(4);
  ASSERT_TRUE(queue.push(1));
  ASSERT_TRUE(queue.push(2));
  queue.close();
  EXPECT_FALSE(queue.push(3));
  EXPECT_FALSE(queue.drained());
  EXPECT_EQ(queue.pop(), 1);
  EXPECT_EQ(queue.pop_for(std::chrono::milliseconds(1)), 2);
  EXPECT_TRUE(queue.drained());
  EXPECT_EQ(queue.pop(), std::nullopt);
}

TEST(BoundedQueue, CloseWakesABlockedProducer) {
  BoundedQueue<int> queue(1);
  ASSERT_TRUE(queue.push(1));
  bool pushed = true;
  std::thread producer([&] { pushed = queue.push(2); });  // blocks: the queue is full
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  queue.close();
  producer.join();
  EXPECT_FALSE(pushed);
}

TEST(BoundedQueue, SeveralWorkersGetEveryItemOnce) {
  BoundedQueue<int> queue(2);
  std::vector<int> seen[3];
  std::vector<std::thread> workers;
  for (auto& mine : seen) {
    workers.emplace_back([&queue, &mine] {
      while (auto item = queue.pop()) mine.push_back(*item);
    });
  }
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(queue.push(i));
  queue.close();
  for (auto& w : workers) w.join();
  std::vector<int> all;
  for (const auto& mine : seen) all.insert(all.end(), mine.begin(), mine.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i], i);
}

}  // namespace
}  // namespace jitvision::app
