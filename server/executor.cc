#include "server/executor.h"

#include <utility>

namespace dtmd {

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) threads = 1;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() { Stop(); }

void ThreadPool::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
  std::deque<std::function<void()>> dropped;
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  dropped.swap(queue_);  // posted after the last thread looked.
}

void ThreadPool::Post(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopped_) return;  // `fn` is destroyed on return, outside the lock.
  queue_.push_back(std::move(fn));
}

size_t ThreadPool::queue_size() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void ThreadPool::Loop() {
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained.
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

void Strand::Post(std::function<void()> fn) {
  bool schedule = false;
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(fn));
    if (!scheduled_) scheduled_ = schedule = true;
  }
  if (schedule) pool_->Post([self = shared_from_this()] { self->Drain(); });
}

void Strand::Dispatch(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (scheduled_) {
      queue_.push_back(std::move(fn));
      return;
    }
    scheduled_ = true;
  }
  fn();
  Drain();
}

void Strand::Drain() {
  // Run a bounded number of closures, then yield the thread so one busy
  // strand cannot starve the others.
  constexpr int kMaxPerTurn = 64;
  for (int i = 0; i < kMaxPerTurn; ++i) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) {
        scheduled_ = false;
        return;
      }
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
  pool_->Post([self = shared_from_this()] { self->Drain(); });
}

}  // namespace dtmd
