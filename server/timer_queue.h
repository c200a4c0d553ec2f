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
// destructor drops timers that have not fired.
class TimerQueue {
 public:
  explicit TimerQueue(Clock* clock);
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  void RunAt(int64_t when_ms, std::function<void()> fn);
  void RunAfter(int64_t delay_ms, std::function<void()> fn);

 private:
  struct Entry {
    int64_t when_ms;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Entry& o) const {
      return when_ms != o.when_ms ? when_ms > o.when_ms : seq > o.seq;
    }
  };
  void Loop();

  Clock* const clock_;
  absl::Mutex mu_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_TIMER_QUEUE_H_
