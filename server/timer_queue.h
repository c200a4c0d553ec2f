// Clock and TimerQueue: the only places dtmd reads the time or waits for it,
// so that both can be replaced in tests.
#ifndef DTMD_SERVER_TIMER_QUEUE_H_
#define DTMD_SERVER_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace dtmd {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;  // wall-clock milliseconds since epoch.
};

class SystemClock : public Clock {
 public:
  int64_t NowMs() const override;
  static Clock* Get();
};

// Runs closures at (or soon after) a wall-clock time, on its own thread.
// Closures must be short: they hand work to an executor. Thread-safe. The
// destructor drops timers that have not fired (their closures are destroyed
// without running).
class TimerQueue {
 public:
  using TimerId = uint64_t;

  explicit TimerQueue(Clock* clock);
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  TimerId RunAt(int64_t when_ms, std::function<void()> fn);
  TimerId RunAfter(int64_t delay_ms, std::function<void()> fn);

  // Drops the timer and its closure (and what the closure holds) at once if
  // it has not fired; returns whether it was dropped. Unknown or fired ids
  // are ignored.
  bool Cancel(TimerId id);

  // Stops the thread (waiting for a closure that is running); timers that
  // have not fired never will, and later RunAt calls are dropped.
  // Idempotent; must not be called from a timer closure.
  void Stop();

  // Timers that have neither fired nor been cancelled.
  size_t size() const;

 private:
  struct Entry {
    int64_t when_ms;
    TimerId id;
    bool operator>(const Entry& o) const {
      return when_ms != o.when_ms ? when_ms > o.when_ms : id > o.id;
    }
  };
  void Loop();
  // Pops cancelled entries off the top of the heap.
  void SkipCancelled() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  mutable absl::Mutex mu_;
  // The heap orders ids by time; the closures live in fns_, so a cancel
  // frees the closure at once and leaves a 16-byte heap entry behind.
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, std::function<void()>> fns_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_TIMER_QUEUE_H_
