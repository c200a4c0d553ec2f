// ChannelCache: the gRPC stubs dtmd keeps for branch targets (one per
// host:port), bounded in number and dropped when idle, because targets churn
// (Kubernetes pod IPs change with every rollout) and each channel holds
// connections, resolver state and memory for as long as it is kept.
#ifndef DTMD_SERVER_CHANNEL_CACHE_H_
#define DTMD_SERVER_CHANNEL_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/generic/generic_stub.h"
#include "server/timer_queue.h"

namespace dtmd {

// Thread-safe. A stub handed out stays valid for as long as its holder keeps
// the shared_ptr (a call in flight keeps its channel alive after the cache
// dropped it); the cache only stops handing it out.
class ChannelCache {
 public:
  using Stub = grpc::GenericStub;
  // Makes the stub for a channel target; called without the cache's lock.
  using Factory = std::function<std::shared_ptr<Stub>(const std::string&)>;

  struct Options {
    size_t max_channels = 1024;  // least recently used dropped beyond this.
    int64_t idle_ms = 600000;    // dropped when unused for this long.
  };

  // `clock` is not owned and must outlive the cache.
  ChannelCache(Options options, const Clock* clock, Factory factory);

  // The stub for `target`, made by the factory on first use or after the
  // cached one was dropped. Marks it used now. Drops every stub idle for
  // options.idle_ms or longer, then the least recently used ones while there
  // are more than options.max_channels.
  std::shared_ptr<Stub> Get(const std::string& target);

  size_t size() const;

 private:
  struct Entry {
    std::string target;
    std::shared_ptr<Stub> stub;
    int64_t last_used_ms;
  };
  using Lru = std::list<Entry>;  // most recently used first.

  // Moves the idle entries to *dropped, then returns the stub for `target`
  // marked used at now_ms, or null when there is none.
  std::shared_ptr<Stub> Touch(const std::string& target, int64_t now_ms,
                              Lru* dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Drop(Lru::iterator entry, Lru* dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Clock* const clock_;
  const Factory factory_;

  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd

#endif  // DTMD_SERVER_CHANNEL_CACHE_H_
