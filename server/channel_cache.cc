#include "server/channel_cache.h"

#include <iterator>
#include <utility>

namespace dtmd {

ChannelCache::ChannelCache(Options options, const Clock* clock, Factory factory)
    : options_(options), clock_(clock), factory_(std::move(factory)) {}

std::shared_ptr<ChannelCache::Stub> ChannelCache::Get(
    const std::string& target) {
  const int64_t now_ms = clock_->NowMs();
  // Destroyed after the lock is released: closing a channel takes time.
  Lru dropped;
  {
    absl::MutexLock lock(&mu_);
    if (std::shared_ptr<Stub> cached = Touch(target, now_ms, &dropped)) {
      return cached;
    }
  }
  std::shared_ptr<Stub> made = factory_(target);
  absl::MutexLock lock(&mu_);
  // Another caller may have made one meanwhile: share theirs, drop ours.
  if (std::shared_ptr<Stub> cached = Touch(target, now_ms, &dropped)) {
    return cached;
  }
  lru_.push_front(Entry{target, made, now_ms});
  index_.emplace(target, lru_.begin());
  while (lru_.size() > options_.max_channels) {
    Drop(std::prev(lru_.end()), &dropped);
  }
  return made;
}

std::shared_ptr<ChannelCache::Stub> ChannelCache::Touch(
    const std::string& target, int64_t now_ms, Lru* dropped) {
  while (!lru_.empty() &&
         now_ms - lru_.back().last_used_ms >= options_.idle_ms) {
    Drop(std::prev(lru_.end()), dropped);
  }
  auto it = index_.find(target);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  it->second->last_used_ms = now_ms;
  return it->second->stub;
}

void ChannelCache::Drop(Lru::iterator entry, Lru* dropped) {
  index_.erase(entry->target);
  dropped->splice(dropped->end(), lru_, entry);
}

size_t ChannelCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace dtmd
