// Tests for RocksDBStore::ListTransactions: order, filters and paging.
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

using ::testing::ElementsAre;

class ListTransactionsTest : public StoreTestBase {
 protected:
  void Add(const std::string& gid, int64_t create_ms,
           const std::string& status = kStatusSubmitted,
           const std::string& type = "saga") {
    TransRecord trans = Trans(gid, status, create_ms);
    trans.set_trans_type(type);
    trans.set_create_time_ms(create_ms);
    ASSERT_TRUE(Create(trans).ok());
  }

  // The gids of one page; `next` gets the page's cursor.
  std::vector<std::string> Page(const TransFilter& filter,
                                const std::optional<TransCursor>& after,
                                int limit,
                                std::optional<TransCursor>* next = nullptr) {
    absl::StatusOr<TransPage> page =
        store_->ListTransactions(filter, after, limit);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) return {};
    std::vector<std::string> gids;
    for (const TransRecord& t : page->transactions) gids.push_back(t.gid());
    if (next != nullptr) *next = page->next;
    return gids;
  }
};

TEST_F(ListTransactionsTest, NewestFirstWithTiesByGidDescending) {
  Add("a", 10);
  Add("b", 30);
  Add("c", 20);
  Add("d", 20);
  std::optional<TransCursor> next;
  EXPECT_THAT(Page({}, std::nullopt, 10, &next),
              ElementsAre("b", "d", "c", "a"));
  EXPECT_FALSE(next.has_value());
}

TEST_F(ListTransactionsTest, PagesResumeStrictlyAfterTheCursor) {
  for (int i = 0; i < 7; ++i) Add("g" + std::to_string(i), 100 + i / 2);
  std::vector<std::string> all;
  std::optional<TransCursor> cursor;
  int pages = 0;
  do {
    std::vector<std::string> page = Page({}, cursor, 3, &cursor);
    EXPECT_LE(page.size(), 3u);
    all.insert(all.end(), page.begin(), page.end());
    ++pages;
  } while (cursor.has_value() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(all, ElementsAre("g6", "g5", "g4", "g3", "g2", "g1", "g0"));
}

TEST_F(ListTransactionsTest, AnExactlyFullPageHasNoCursor) {
  Add("a", 1);
  Add("b", 2);
  std::optional<TransCursor> next;
  EXPECT_THAT(Page({}, std::nullopt, 2, &next), ElementsAre("b", "a"));
  EXPECT_FALSE(next.has_value());
}

TEST_F(ListTransactionsTest, FiltersCombine) {
  Add("order-1", 10, kStatusSubmitted, "saga");
  Add("order-2", 20, kStatusFailed, "saga");
  Add("order-3", 30, kStatusSubmitted, "tcc");
  Add("order-4", 40, kStatusSubmitted, "saga");
  Add("other-5", 50, kStatusSubmitted, "saga");
  Add("orde", 60, kStatusSubmitted, "saga");

  TransFilter by_status;
  by_status.status = kStatusSubmitted;
  EXPECT_THAT(Page(by_status, std::nullopt, 10),
              ElementsAre("orde", "other-5", "order-4", "order-3", "order-1"));
  TransFilter by_type;
  by_type.trans_type = "tcc";
  EXPECT_THAT(Page(by_type, std::nullopt, 10), ElementsAre("order-3"));
  TransFilter by_prefix;
  by_prefix.gid_prefix = "order-";
  EXPECT_THAT(Page(by_prefix, std::nullopt, 10),
              ElementsAre("order-4", "order-3", "order-2", "order-1"));
  TransFilter by_time;
  by_time.created_after_ms = 10;
  by_time.created_before_ms = 40;
  EXPECT_THAT(Page(by_time, std::nullopt, 10),
              ElementsAre("order-3", "order-2"));
  TransFilter all_of_them = by_prefix;
  all_of_them.status = kStatusSubmitted;
  all_of_them.trans_type = "saga";
  EXPECT_THAT(Page(all_of_them, std::nullopt, 10),
              ElementsAre("order-4", "order-1"));
}

TEST_F(ListTransactionsTest, ATransactionAddedBetweenPagesDoesNotShiftThem) {
  for (int i = 0; i < 4; ++i) Add("g" + std::to_string(i), 10 + i);
  std::optional<TransCursor> cursor;
  EXPECT_THAT(Page({}, std::nullopt, 2, &cursor), ElementsAre("g3", "g2"));
  Add("newer", 100);
  EXPECT_THAT(Page({}, cursor, 2, &cursor), ElementsAre("g1", "g0"));
  EXPECT_FALSE(cursor.has_value());
}

TEST_F(ListTransactionsTest, ANonPositiveLimitIsInvalid) {
  EXPECT_EQ(store_->ListTransactions({}, std::nullopt, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dtmd::storage
