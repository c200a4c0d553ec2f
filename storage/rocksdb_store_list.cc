// RocksDBStore::ListTransactions: the operators' listing, newest first.
// There is no index by creation time, so every candidate record is read
// (from gid_prefix on, when one is given) and a bounded heap keeps the
// newest `limit` + 1 of those after the cursor.
#include <algorithm>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {
namespace {

// Whether a sorts before b in the listing's order (newest first).
bool Newer(const TransRecord& a, const TransRecord& b) {
  return std::forward_as_tuple(a.create_time_ms(), a.gid()) >
         std::forward_as_tuple(b.create_time_ms(), b.gid());
}

bool After(const TransRecord& t, const std::optional<TransCursor>& cursor) {
  if (!cursor.has_value()) return true;
  return std::forward_as_tuple(t.create_time_ms(), t.gid()) <
         std::forward_as_tuple(cursor->create_time_ms, cursor->gid);
}

bool Matches(const TransRecord& t, const TransFilter& filter) {
  return (filter.status.empty() || t.status() == filter.status) &&
         (filter.trans_type.empty() || t.trans_type() == filter.trans_type) &&
         absl::StartsWith(t.gid(), filter.gid_prefix) &&
         (filter.created_after_ms == 0 ||
          t.create_time_ms() > filter.created_after_ms) &&
         (filter.created_before_ms == 0 ||
          t.create_time_ms() < filter.created_before_ms);
}

}  // namespace

absl::StatusOr<TransPage> RocksDBStore::ListTransactions(
    const TransFilter& filter, const std::optional<TransCursor>& after,
    int limit) {
  if (limit <= 0) {
    return absl::InvalidArgumentError("ListTransactions: limit must be > 0");
  }
  // The heap's top is the oldest kept, dropped first when it overflows.
  std::priority_queue<TransRecord, std::vector<TransRecord>, decltype(&Newer)>
      newest(&Newer);
  const size_t keep = static_cast<size_t>(limit) + 1;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db_->NewIterator(rocksdb::ReadOptions(), impl_->cfs_.trans));
  for (it->Seek(filter.gid_prefix); it->Valid(); it->Next()) {
    const absl::string_view key(it->key().data(), it->key().size());
    if (!absl::StartsWith(key, filter.gid_prefix)) break;  // Keys are sorted.
    TransRecord record;
    if (!record.ParseFromArray(it->value().data(),
                               static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("corrupt record for transaction ", key));
    }
    if (!Matches(record, filter) || !After(record, after)) continue;
    if (newest.size() == keep) {
      if (!Newer(record, newest.top())) continue;
      newest.pop();
    }
    newest.push(std::move(record));
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: list transactions");
  }
  TransPage page;
  page.transactions.reserve(newest.size());
  while (!newest.empty()) {
    page.transactions.push_back(newest.top());
    newest.pop();
  }
  std::reverse(page.transactions.begin(), page.transactions.end());
  if (page.transactions.size() > static_cast<size_t>(limit)) {
    page.transactions.pop_back();
    const TransRecord& last = page.transactions.back();
    page.next = TransCursor{last.create_time_ms(), last.gid()};
  }
  return page;
}

}  // namespace dtmd::storage
