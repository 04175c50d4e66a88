#include "daemon/task_queue.h"

#include <gtest/gtest.h>

namespace crunch::daemon {
namespace {

TEST(TaskQueue, OrdersByPriorityThenArrival) {
  TaskQueue q(10);
  ASSERT_TRUE(q.Push({0, 1, 101}));
  ASSERT_TRUE(q.Push({5, 2, 102}));
  ASSERT_TRUE(q.Push({0, 3, 103}));
  ASSERT_TRUE(q.Push({5, 4, 104}));
  ASSERT_TRUE(q.Push({-1, 5, 105}));
  std::vector<uint64_t> order;
  while (!q.empty()) {
    order.push_back(q.Front()->task_id);
    q.PopFront();
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{102, 104, 101, 103, 105}));
}

TEST(TaskQueue, RejectsPushWhenFull) {
  TaskQueue q(2);
  EXPECT_TRUE(q.Push({0, 1, 1}));
  EXPECT_TRUE(q.Push({0, 2, 2}));
  EXPECT_FALSE(q.Push({9, 3, 3}));
  EXPECT_EQ(q.size(), 2u);
}

TEST(TaskQueue, RequeueIgnoresCapacityAndKeepsArrivalOrder) {
  TaskQueue q(1);
  ASSERT_TRUE(q.Push({0, 7, 7}));
  q.Requeue({0, 3, 3});
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.Front()->task_id, 3u);
}

TEST(TaskQueue, RemoveTakesOutOnlyThatTask) {
  TaskQueue q(10);
  q.Push({0, 1, 1});
  q.Push({0, 2, 2});
  EXPECT_TRUE(q.Remove({0, 1, 1}));
  EXPECT_FALSE(q.Remove({0, 1, 1}));
  EXPECT_EQ(q.Front()->task_id, 2u);
}

}  // namespace
}  // namespace crunch::daemon
