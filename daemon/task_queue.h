// TaskQueue: a bounded queue of task ids ordered by priority (higher first),
// then by arrival. Cancelling a queued task removes it in O(log n).
//
// Thread safety: not thread-safe; owned by the scheduler's thread.

#ifndef CRUNCH_DAEMON_TASK_QUEUE_H_
#define CRUNCH_DAEMON_TASK_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

namespace crunch::daemon {

class TaskQueue {
 public:
  // The place of a task in the queue; keep it to Remove() the task later.
  struct Key {
    int32_t priority;
    uint64_t sequence;  // Arrival order; a requeued task keeps its own.
    uint64_t task_id;
    bool operator<(const Key& o) const {
      if (priority != o.priority) return priority > o.priority;
      return sequence < o.sequence;
    }
  };

  explicit TaskQueue(size_t capacity) : capacity_(capacity) {}

  // False (and nothing queued) when the queue holds `capacity` tasks already.
  bool Push(const Key& key) {
    if (keys_.size() >= capacity_) return false;
    keys_.insert(key);
    return true;
  }
  // Puts back a task that was dispatched and must run again (its worker died
  // before starting it). Ignores the capacity: the task was already accepted.
  void Requeue(const Key& key) { keys_.insert(key); }

  std::optional<Key> Front() const {
    if (keys_.empty()) return std::nullopt;
    return *keys_.begin();
  }
  void PopFront() { keys_.erase(keys_.begin()); }
  // The first `n` keys (or all), the front first.
  std::vector<Key> FirstKeys(size_t n) const {
    std::vector<Key> keys;
    for (auto it = keys_.begin(); it != keys_.end() && keys.size() < n; ++it) keys.push_back(*it);
    return keys;
  }
  bool Remove(const Key& key) { return keys_.erase(key) == 1; }

  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  size_t capacity() const { return capacity_; }
  void set_capacity(size_t capacity) { capacity_ = capacity; }

 private:
  size_t capacity_;
  std::set<Key> keys_;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_TASK_QUEUE_H_
