// ThreadPool runs closures on a fixed set of threads; Strand runs closures
// posted to it one at a time, in order, on a ThreadPool. Strands are how dtmd
// serializes the events of one transaction without a lock held across them
// and without a thread per transaction.
#ifndef DTMD_SERVER_EXECUTOR_H_
#define DTMD_SERVER_EXECUTOR_H_

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dtmd {

// Thread-safe. The destructor calls Stop().
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // After Stop() the closure is destroyed without running.
  void Post(std::function<void()> fn);

  // Runs every closure already posted, then joins the threads; later posts
  // are dropped. Idempotent. Must not be called from a pool thread.
  void Stop();

  // Closures posted and not yet started.
  size_t queue_size();

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // threads gone: drop posts.
  std::vector<std::thread> threads_;
};

// Thread-safe. Closures posted to one strand never run concurrently and run
// in posting order. The strand must outlive the closures posted to it (hold
// it by shared_ptr from the object that posts).
class Strand : public std::enable_shared_from_this<Strand> {
 public:
  explicit Strand(ThreadPool* pool) : pool_(pool) {}

  void Post(std::function<void()> fn);

  // Like Post, but when the strand is idle runs `fn` (and whatever is posted
  // meanwhile) on the calling thread, saving a thread hop. For callers on
  // threads that may run strand work: gRPC callback threads, never a thread
  // that must stay responsive such as the store's.
  void Dispatch(std::function<void()> fn);

 private:
  void Drain();

  ThreadPool* const pool_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_EXECUTOR_H_
