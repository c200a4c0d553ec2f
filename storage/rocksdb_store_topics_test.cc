// RocksDBStore's topics: subscribe, unsubscribe and delete with their error
// codes, the order of writes within one group, durability (a subscription
// is acknowledged after its fsync and survives a reopen), faults, and the
// opening of a format-2 store written before the topics family existed.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "storage/fault_injection_fs.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

class TopicsTest : public StoreTestBase {
 protected:
  absl::Status Subscribe(const std::string& topic, const std::string& url,
                         const std::string& remark = "") {
    StatusWaiter waiter;
    store_->Subscribe(topic, url, remark, waiter.Callback());
    return waiter.Wait();
  }
  absl::Status Unsubscribe(const std::string& topic, const std::string& url) {
    StatusWaiter waiter;
    store_->Unsubscribe(topic, url, waiter.Callback());
    return waiter.Wait();
  }
  absl::Status DeleteTopic(const std::string& topic) {
    StatusWaiter waiter;
    store_->DeleteTopic(topic, waiter.Callback());
    return waiter.Wait();
  }
  // The topic's subscriber URLs; empty (with the code in *code) if the read
  // fails.
  std::vector<std::string> Urls(const std::string& topic,
                                absl::StatusCode* code = nullptr) {
    absl::StatusOr<std::vector<Subscriber>> subscribers =
        store_->GetTopic(topic);
    if (code != nullptr) *code = subscribers.status().code();
    std::vector<std::string> urls;
    if (subscribers.ok()) {
      for (const Subscriber& s : *subscribers) urls.push_back(s.url);
    }
    return urls;
  }
  std::vector<std::string> Topics() {
    absl::StatusOr<std::vector<std::string>> names = store_->ListTopics();
    EXPECT_TRUE(names.ok()) << names.status();
    return names.ok() ? *names : std::vector<std::string>{};
  }
};

using Names = std::vector<std::string>;

TEST_F(TopicsTest, SubscribersAreKeptInSubscriptionOrderWithRemarks) {
  ASSERT_TRUE(Subscribe("orders", "b:1/s.S/M", "second-url-first").ok());
  ASSERT_TRUE(Subscribe("orders", "a:1/s.S/M", "").ok());
  ASSERT_TRUE(Subscribe("orders", "c:1/s.S/M", "third").ok());
  absl::StatusOr<std::vector<Subscriber>> subscribers =
      store_->GetTopic("orders");
  ASSERT_TRUE(subscribers.ok()) << subscribers.status();
  ASSERT_EQ(subscribers->size(), 3u);
  EXPECT_EQ((*subscribers)[0].url, "b:1/s.S/M");
  EXPECT_EQ((*subscribers)[0].remark, "second-url-first");
  EXPECT_EQ((*subscribers)[1].url, "a:1/s.S/M");
  EXPECT_EQ((*subscribers)[1].remark, "");
  EXPECT_EQ((*subscribers)[2].url, "c:1/s.S/M");
  EXPECT_EQ((*subscribers)[2].remark, "third");
}

TEST_F(TopicsTest, SubscribingAnUrlTwiceIsAlreadyExists) {
  ASSERT_TRUE(Subscribe("t", "h:1/s.S/M", "first").ok());
  absl::Status again = Subscribe("t", "h:1/s.S/M", "other remark");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_EQ(store_->GetTopic("t")->at(0).remark, "first");
  // The same URL on another topic is another subscription.
  EXPECT_TRUE(Subscribe("u", "h:1/s.S/M").ok());
}

TEST_F(TopicsTest, UnsubscribeRemovesOneAndTheLastOneTakesTheTopic) {
  ASSERT_TRUE(Subscribe("t", "a:1/s.S/M").ok());
  ASSERT_TRUE(Subscribe("t", "b:1/s.S/M").ok());
  ASSERT_TRUE(Subscribe("t", "c:1/s.S/M").ok());
  ASSERT_TRUE(Unsubscribe("t", "b:1/s.S/M").ok());
  EXPECT_EQ(Urls("t"), (Names{"a:1/s.S/M", "c:1/s.S/M"}));
  ASSERT_TRUE(Unsubscribe("t", "a:1/s.S/M").ok());
  ASSERT_TRUE(Unsubscribe("t", "c:1/s.S/M").ok());
  absl::StatusCode code;
  EXPECT_EQ(Urls("t", &code), Names{});
  EXPECT_EQ(code, absl::StatusCode::kNotFound);
  EXPECT_EQ(Topics(), Names{});
}

TEST_F(TopicsTest, UnsubscribeOfAnUnknownTopicOrUrlIsNotFound) {
  EXPECT_EQ(Unsubscribe("nope", "a:1/s.S/M").code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(Subscribe("t", "a:1/s.S/M").ok());
  absl::Status s = Unsubscribe("t", "b:1/s.S/M");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(Urls("t"), Names{"a:1/s.S/M"});
}

TEST_F(TopicsTest, DeleteTopicDropsEverySubscriber) {
  ASSERT_TRUE(Subscribe("t", "a:1/s.S/M").ok());
  ASSERT_TRUE(Subscribe("t", "b:1/s.S/M").ok());
  ASSERT_TRUE(Subscribe("keep", "a:1/s.S/M").ok());
  ASSERT_TRUE(DeleteTopic("t").ok());
  EXPECT_EQ(store_->GetTopic("t").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(DeleteTopic("t").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Topics(), Names{"keep"});
  // A deleted topic can be subscribed to afresh.
  ASSERT_TRUE(Subscribe("t", "b:1/s.S/M").ok());
  EXPECT_EQ(Urls("t"), Names{"b:1/s.S/M"});
}

TEST_F(TopicsTest, EmptyTopicOrUrlIsInvalid) {
  EXPECT_EQ(Subscribe("", "a:1/s.S/M").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Subscribe("t", "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Unsubscribe("", "a:1/s.S/M").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeleteTopic("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Topics(), Names{});
}

TEST_F(TopicsTest, ListTopicsIsSorted) {
  for (const char* topic : {"m", "b", "z", "a"}) {
    ASSERT_TRUE(Subscribe(topic, "h:1/s.S/M").ok());
  }
  EXPECT_EQ(Topics(), (Names{"a", "b", "m", "z"}));
}

TEST_F(TopicsTest, WritesOfOneGroupSeeTheEarlierOnes) {
  std::unique_ptr<absl::Notification> release = PauseWriter();
  std::vector<StatusWaiter> waiters(7);
  store_->Subscribe("t", "a:1/s.S/M", "", waiters[0].Callback());
  store_->Subscribe("t", "a:1/s.S/M", "", waiters[1].Callback());  // exists
  store_->Subscribe("t", "b:1/s.S/M", "", waiters[2].Callback());
  store_->DeleteTopic("t", waiters[3].Callback());
  store_->Unsubscribe("t", "a:1/s.S/M", waiters[4].Callback());  // gone
  store_->Subscribe("t", "c:1/s.S/M", "", waiters[5].Callback());
  store_->Unsubscribe("t", "c:1/s.S/M", waiters[6].Callback());  // last
  release->Notify();
  std::vector<absl::StatusCode> codes;
  for (StatusWaiter& w : waiters) codes.push_back(w.Wait().code());
  using absl::StatusCode;
  EXPECT_EQ(codes, (std::vector<StatusCode>{
                       StatusCode::kOk, StatusCode::kAlreadyExists,
                       StatusCode::kOk, StatusCode::kOk, StatusCode::kNotFound,
                       StatusCode::kOk, StatusCode::kOk}));
  EXPECT_EQ(store_->GetTopic("t").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TopicsTest, SubscriptionsSurviveAReopen) {
  ASSERT_TRUE(Subscribe("t", "a:1/s.S/M", "remark").ok());
  ASSERT_TRUE(Subscribe("t", "b:1/s.S/M").ok());
  ASSERT_TRUE(Subscribe("gone", "b:1/s.S/M").ok());
  ASSERT_TRUE(DeleteTopic("gone").ok());
  Reopen();
  EXPECT_EQ(Urls("t"), (Names{"a:1/s.S/M", "b:1/s.S/M"}));
  EXPECT_EQ(store_->GetTopic("t")->at(0).remark, "remark");
  EXPECT_EQ(Topics(), Names{"t"});
}

// A format-2 store as a dtmd before topics left it: every family but
// `topics`. `drop` names the family to take away.
class FamiliesTest : public TopicsTest {
 protected:
  void DropFamily(const std::string& drop) {
    store_.reset();
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, path_, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& name : names) families.push_back({name, {}});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open({}, path_, families, &handles, &db).ok());
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == drop) {
        ASSERT_TRUE(db->DropColumnFamily(handles[i]).ok());
      }
    }
    for (auto* handle : handles) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    }
    ASSERT_TRUE(db->Close().ok());
    delete db;
    names.clear();
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies({}, path_, &names).ok());
    ASSERT_EQ(std::count(names.begin(), names.end(), drop), 0);
  }
};

TEST_F(FamiliesTest, StoreWithoutTheTopicsFamilyOpensAndGainsIt) {
  ASSERT_TRUE(Create(Trans("g1", kStatusSubmitted, 1)).ok());
  DropFamily("topics");
  ASSERT_TRUE(OpenStatus().ok());
  EXPECT_TRUE(store_->GetTransaction("g1").ok());
  EXPECT_EQ(Topics(), Names{});
  ASSERT_TRUE(Subscribe("t", "a:1/s.S/M").ok());
  Reopen();
  EXPECT_EQ(Urls("t"), Names{"a:1/s.S/M"});
  EXPECT_TRUE(store_->GetTransaction("g1").ok());
}

TEST_F(FamiliesTest, StoreWithoutAnOlderFamilyIsDamaged) {
  ASSERT_TRUE(Create(Trans("g1", kStatusSubmitted, 1)).ok());
  DropFamily("due");
  absl::Status refused = OpenStatus();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss) << refused;
  EXPECT_NE(refused.message().find("no column family 'due'"),
            absl::string_view::npos)
      << refused;
  ASSERT_TRUE(OpenStatus(/*accept_data_loss=*/true).ok());
  EXPECT_TRUE(store_->GetTransaction("g1").ok());
  EXPECT_EQ(Due(10), std::vector<std::string>{});
}

class TopicFaultTest : public TopicsTest {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<FaultInjectionFileSystem>();
    options_.file_system = fs_;
    TopicsTest::SetUp();
  }
  std::shared_ptr<FaultInjectionFileSystem> fs_;
};

TEST_F(TopicFaultTest, TopicWritesAreAcknowledgedAfterTheirFsync) {
  fs_->HoldWalSyncs();
  StatusWaiter subscribed;
  store_->Subscribe("t", "a:1/s.S/M", "", subscribed.Callback());
  ASSERT_TRUE(fs_->AwaitHeldWalSyncs(1, absl::Seconds(30)));
  // The write is applied (readable) but not acknowledged before its fsync.
  EXPECT_EQ(Urls("t"), Names{"a:1/s.S/M"});
  EXPECT_FALSE(subscribed.HasRun());
  fs_->ReleaseWalSyncs();
  EXPECT_TRUE(subscribed.Wait().ok());
  const int64_t syncs = fs_->wal_syncs();
  ASSERT_TRUE(Unsubscribe("t", "a:1/s.S/M").ok());
  ASSERT_TRUE(DeleteTopic("t").code() == absl::StatusCode::kNotFound);
  EXPECT_GE(fs_->wal_syncs() - syncs, 1);
}

TEST_F(TopicFaultTest, NoSpaceAnswersUnavailableAndFailedSyncIsLatched) {
  ASSERT_TRUE(Subscribe("t", "a:1/s.S/M").ok());
  fs_->SetWriteFault(FaultInjectionFileSystem::WriteFault::kNoSpace);
  EXPECT_EQ(Subscribe("t", "b:1/s.S/M").code(), absl::StatusCode::kUnavailable);
  fs_->SetWriteFault(FaultInjectionFileSystem::WriteFault::kNone);
  ASSERT_TRUE(Subscribe("t", "c:1/s.S/M").ok());

  fs_->FailWalSyncAfter(fs_->wal_syncs());
  EXPECT_EQ(Subscribe("t", "d:1/s.S/M").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->WriteHealth().code(), absl::StatusCode::kInternal);
  fs_->FailWalSyncAfter(-1);
  EXPECT_EQ(DeleteTopic("t").code(), absl::StatusCode::kUnavailable);
  // A restart recovers from disk: the refused delete is not there; whether
  // the subscription whose fsync failed is there is unknown (as its caller
  // was told).
  Reopen();
  const Names urls = Urls("t");
  ASSERT_GE(urls.size(), 2u);
  EXPECT_EQ(urls[0], "a:1/s.S/M");
  EXPECT_EQ(urls[1], "c:1/s.S/M");
}

}  // namespace
}  // namespace dtmd::storage
