#include "server/timer_queue.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/time/time.h"

namespace dtmd {

int64_t SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Clock* SystemClock::Get() {
  static SystemClock* clock = new SystemClock();
  return clock;
}

TimerQueue::TimerQueue(Clock* clock) : clock_(clock) {
  thread_ = std::thread([this] { Loop(); });
}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void TimerQueue::RunAt(int64_t when_ms, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  heap_.push(Entry{when_ms, next_seq_++, std::move(fn)});
  // The loop wakes only for a timer earlier than the one it sleeps for.
}

void TimerQueue::RunAfter(int64_t delay_ms, std::function<void()> fn) {
  RunAt(clock_->NowMs() + std::max<int64_t>(delay_ms, 0), std::move(fn));
}

void TimerQueue::Loop() {
  // Wake at least this often so that a clock that jumps is noticed.
  constexpr int64_t kMaxSleepMs = 200;
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    int64_t now = clock_->NowMs();
    if (!heap_.empty() && heap_.top().when_ms <= now) {
      std::function<void()> fn = std::move(const_cast<Entry&>(heap_.top()).fn);
      heap_.pop();
      mu_.Unlock();
      fn();
      mu_.Lock();
      continue;
    }
    int64_t wait_ms = kMaxSleepMs;
    if (!heap_.empty()) wait_ms = std::min(wait_ms, heap_.top().when_ms - now);
    wait_ms = std::max<int64_t>(wait_ms, 1);
    // Wakes early for stop or for a timer due before the planned wake-up;
    // later timers (the common case) cost the caller no wake-up.
    const int64_t wake_at = now + wait_ms;
    auto earlier = [this, wake_at]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || (!heap_.empty() && heap_.top().when_ms < wake_at);
    };
    mu_.AwaitWithTimeout(absl::Condition(&earlier),
                         absl::Milliseconds(wait_ms));
  }
}

}  // namespace dtmd
