// TestRingItem: the smallest item an SpscRing can carry (a value plus the
// ring's sequence word), for the ring and doorbell unit tests.

#ifndef CRUNCH_IPC_TESTING_TEST_RING_ITEM_H_
#define CRUNCH_IPC_TESTING_TEST_RING_ITEM_H_

#include <cstdint>

namespace crunch::ipc::testing {

struct TestRingItem {
  TestRingItem() = default;
  TestRingItem(uint64_t v) : value(v) {}  // NOLINT: tests push plain numbers.

  uint64_t value = 0;
  uint32_t unused = 0;
  uint32_t sequence = 0;
};

}  // namespace crunch::ipc::testing

#endif  // CRUNCH_IPC_TESTING_TEST_RING_ITEM_H_
