#include "tests/integration/paced_load.h"

#include <chrono>
#include <random>
#include <utility>

namespace dtmd::testing {

PacedLoad::PacedLoad(LoadOptions options, Job job)
    : options_(std::move(options)), job_(std::move(job)) {
  for (int t = 0; t < options_.threads; ++t) {
    threads_.emplace_back([this, t] { Run(t); });
  }
}

PacedLoad::~PacedLoad() { Stop(); }

void PacedLoad::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void PacedLoad::Run(int thread) {
  std::mt19937 random(thread + 1);
  int in_burst = 0;
  while (!stop_) {
    const int n = next_++;
    if (n >= options_.max_jobs) return;
    ++started_;
    const bool acked = job_(n);
    ++finished_;
    if (acked) {
      ++acked_;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (options_.burst > 1 && ++in_burst >= options_.burst) {
      in_burst = 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::uniform_int_distribution<int>(0, options_.pause_ms)(random)));
    }
  }
}

}  // namespace dtmd::testing
