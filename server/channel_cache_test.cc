// ChannelCache: bounded by count (least recently used first) and by idleness,
// with the time injected.
#include "server/channel_cache.h"

#include <memory>
#include <string>
#include <vector>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"

namespace dtmd {
namespace {

class ManualClock : public Clock {
 public:
  int64_t NowMs() const override { return now_ms; }
  int64_t now_ms = 1000000;
};

class ChannelCacheTest : public ::testing::Test {
 protected:
  ChannelCache MakeCache(size_t max_channels, int64_t idle_ms) {
    ChannelCache::Options options;
    options.max_channels = max_channels;
    options.idle_ms = idle_ms;
    return ChannelCache(options, &clock_, [this](const std::string& target) {
      made_.push_back(target);
      // A channel connects only when used: nothing is dialled here.
      return std::make_shared<grpc::GenericStub>(
          grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    });
  }

  ManualClock clock_;
  std::vector<std::string> made_;  // targets the factory was asked for.
};

TEST_F(ChannelCacheTest, SharesOneStubPerTarget) {
  ChannelCache cache = MakeCache(4, 60000);
  auto a1 = cache.Get("dns:///a:1");
  auto a2 = cache.Get("dns:///a:1");
  auto b = cache.Get("dns:///b:1");
  EXPECT_EQ(a1, a2);
  EXPECT_NE(a1, b);
  EXPECT_EQ(made_, (std::vector<std::string>{"dns:///a:1", "dns:///b:1"}));
  EXPECT_EQ(cache.size(), 2u);
}

TEST_F(ChannelCacheTest, DropsTheLeastRecentlyUsedBeyondTheBound) {
  ChannelCache cache = MakeCache(2, 60000);
  auto a = cache.Get("a:1");
  clock_.now_ms += 1;
  cache.Get("b:1");
  clock_.now_ms += 1;
  cache.Get("a:1");  // a is now the most recently used.
  clock_.now_ms += 1;
  cache.Get("c:1");  // b goes.
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Get("a:1"), a);
  cache.Get("b:1");  // made again.
  EXPECT_EQ(made_, (std::vector<std::string>{"a:1", "b:1", "c:1", "b:1"}));
}

TEST_F(ChannelCacheTest, DropsChannelsIdleForTheIdleTime) {
  ChannelCache cache = MakeCache(10, 1000);
  auto a = cache.Get("a:1");
  cache.Get("b:1");
  clock_.now_ms += 600;
  cache.Get("b:1");  // b used again; a idle for 600 ms.
  clock_.now_ms += 399;
  EXPECT_EQ(cache.Get("a:1"), a) << "999 ms idle: kept";
  clock_.now_ms += 1000;
  cache.Get("c:1");  // a and b idle for 1000 ms or more: both dropped.
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.Get("a:1"), a);
  EXPECT_EQ(made_, (std::vector<std::string>{"a:1", "b:1", "c:1", "a:1"}));
}

TEST_F(ChannelCacheTest, AStubHeldByACallerOutlivesItsEviction) {
  ChannelCache cache = MakeCache(1, 1000);
  std::shared_ptr<grpc::GenericStub> held = cache.Get("a:1");
  std::weak_ptr<grpc::GenericStub> weak = held;
  cache.Get("b:1");  // a evicted from the cache...
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_FALSE(weak.expired()) << "...but alive while a call holds it";
  held.reset();
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace dtmd
