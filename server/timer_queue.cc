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

TimerQueue::~TimerQueue() { Stop(); }

void TimerQueue::Stop() {
  absl::flat_hash_map<TimerId, std::function<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  dropped.swap(fns_);
  heap_ = {};
}

TimerQueue::TimerId TimerQueue::RunAt(int64_t when_ms,
                                      std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  const TimerId id = next_id_++;
  if (stopping_) return id;  // `fn` is destroyed outside the lock.
  heap_.push(Entry{when_ms, id});
  fns_.emplace(id, std::move(fn));
  // The loop wakes only for a timer earlier than the one it sleeps for.
  return id;
}

TimerQueue::TimerId TimerQueue::RunAfter(int64_t delay_ms,
                                         std::function<void()> fn) {
  return RunAt(clock_->NowMs() + std::max<int64_t>(delay_ms, 0), std::move(fn));
}

bool TimerQueue::Cancel(TimerId id) {
  std::function<void()> dropped;  // destroyed outside the lock.
  absl::MutexLock lock(&mu_);
  auto it = fns_.find(id);
  if (it == fns_.end()) return false;
  dropped = std::move(it->second);
  fns_.erase(it);
  SkipCancelled();
  return true;
}

size_t TimerQueue::size() const {
  absl::MutexLock lock(&mu_);
  return fns_.size();
}

void TimerQueue::SkipCancelled() {
  while (!heap_.empty() && !fns_.contains(heap_.top().id)) heap_.pop();
  // Cancelled entries deeper in the heap wait for their time; if they ever
  // dominate, rebuild the heap from the live ones.
  if (heap_.size() > 1024 && heap_.size() > 4 * fns_.size()) {
    std::vector<Entry> live;
    live.reserve(fns_.size());
    while (!heap_.empty()) {
      if (fns_.contains(heap_.top().id)) live.push_back(heap_.top());
      heap_.pop();
    }
    heap_ = decltype(heap_)(std::greater<Entry>(), std::move(live));
  }
}

void TimerQueue::Loop() {
  // Wake at least this often so that a clock that jumps is noticed.
  constexpr int64_t kMaxSleepMs = 200;
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    SkipCancelled();
    int64_t now = clock_->NowMs();
    if (!heap_.empty() && heap_.top().when_ms <= now) {
      auto it = fns_.find(heap_.top().id);
      std::function<void()> fn = std::move(it->second);
      fns_.erase(it);
      heap_.pop();
      mu_.Unlock();
      fn();
      fn = nullptr;  // release what it held before taking the lock again.
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
