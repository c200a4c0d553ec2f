// RocksDBStore: topics and their subscribers (the layout is in
// rocksdb_store.h). Writes go through the writer like every other write, so
// a subscription checked there cannot be raced; reads go to RocksDB.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {
namespace {

using ::dtmd::storage::v1::TopicRecord;

absl::Status CheckTopicOp(absl::string_view topic, absl::string_view url,
                          bool needs_url) {
  if (topic.empty()) {
    return absl::InvalidArgumentError("topic: must not be empty");
  }
  if (needs_url && url.empty()) {
    return absl::InvalidArgumentError("url: must not be empty");
  }
  return absl::OkStatus();
}

absl::Status TopicNotFound(absl::string_view topic) {
  return absl::NotFoundError(absl::StrCat("topic ", topic, " not found"));
}

// The position of url among the record's subscribers, or -1.
int FindSubscriber(const TopicRecord& record, absl::string_view url) {
  for (int i = 0; i < record.subscribers_size(); ++i) {
    if (record.subscribers(i).url() == url) return i;
  }
  return -1;
}

}  // namespace

absl::StatusOr<TopicRecord> ReadTopic(rocksdb::DB* db, const Families& cfs,
                                      absl::string_view topic,
                                      const GroupOverlay* overlay) {
  std::string value;
  const std::string* encoded = nullptr;
  if (overlay != nullptr) {
    if (const std::optional<std::string>* staged = overlay->Topic(topic);
        staged != nullptr) {
      if (!staged->has_value()) return TopicNotFound(topic);
      encoded = &**staged;
    }
  }
  if (encoded == nullptr) {
    rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), cfs.topics,
                rocksdb::Slice(topic.data(), topic.size()), &value);
    if (s.IsNotFound()) return TopicNotFound(topic);
    if (!s.ok()) return FromRocks(s, "RocksDBStore: read topic");
    encoded = &value;
  }
  TopicRecord record;
  if (!record.ParseFromString(*encoded)) {
    return absl::DataLossError(
        absl::StrCat("corrupt record for topic ", topic));
  }
  return record;
}

RocksDBStore::Impl::Op RocksDBStore::Impl::TopicOp(Op::Kind kind,
                                                   std::string topic,
                                                   Subscriber subscriber,
                                                   StatusCallback done) {
  Op op;
  op.kind = kind;
  op.durability = Durability::kSync;
  op.status_done = std::move(done);
  op.topic = std::move(topic);
  op.subscriber = std::move(subscriber);
  return op;
}

absl::Status RocksDBStore::Impl::StageSubscribe(Op& op, Overlay* batch,
                                                Changes* changes) {
  if (absl::Status s = CheckTopicOp(op.topic, op.subscriber.url, true);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TopicRecord> stored = ReadTopic(db_, cfs_, op.topic, batch);
  if (!stored.ok() && !absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  TopicRecord record = stored.ok() ? *std::move(stored) : TopicRecord();
  if (FindSubscriber(record, op.subscriber.url) >= 0) {
    return absl::AlreadyExistsError(absl::StrCat("url ", op.subscriber.url,
                                                 " is already subscribed to "
                                                 "topic ",
                                                 op.topic));
  }
  TopicRecord::Subscriber* added = record.add_subscribers();
  added->set_url(op.subscriber.url);
  added->set_remark(op.subscriber.remark);
  changes->push_back({cfs_.topics, op.topic, record.SerializeAsString()});
  return absl::OkStatus();
}

absl::Status RocksDBStore::Impl::StageUnsubscribe(Op& op, Overlay* batch,
                                                  Changes* changes) {
  if (absl::Status s = CheckTopicOp(op.topic, op.subscriber.url, true);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TopicRecord> record = ReadTopic(db_, cfs_, op.topic, batch);
  if (!record.ok()) return record.status();
  const int position = FindSubscriber(*record, op.subscriber.url);
  if (position < 0) {
    return absl::NotFoundError(absl::StrCat(
        "url ", op.subscriber.url, " is not subscribed to topic ", op.topic));
  }
  record->mutable_subscribers()->erase(record->mutable_subscribers()->begin() +
                                       position);
  if (record->subscribers().empty()) {
    changes->push_back({cfs_.topics, op.topic, "", /*is_delete=*/true});
  } else {
    changes->push_back({cfs_.topics, op.topic, record->SerializeAsString()});
  }
  return absl::OkStatus();
}

absl::Status RocksDBStore::Impl::StageDeleteTopic(Op& op, Overlay* batch,
                                                  Changes* changes) {
  if (absl::Status s = CheckTopicOp(op.topic, "", false); !s.ok()) return s;
  absl::StatusOr<TopicRecord> record = ReadTopic(db_, cfs_, op.topic, batch);
  if (!record.ok()) return record.status();
  changes->push_back({cfs_.topics, op.topic, "", /*is_delete=*/true});
  return absl::OkStatus();
}

void RocksDBStore::Subscribe(std::string topic, std::string url,
                             std::string remark, StatusCallback done) {
  impl_->Enqueue(Impl::TopicOp(Impl::Op::Kind::kSubscribe, std::move(topic),
                               {std::move(url), std::move(remark)},
                               std::move(done)));
}

void RocksDBStore::Unsubscribe(std::string topic, std::string url,
                               StatusCallback done) {
  impl_->Enqueue(Impl::TopicOp(Impl::Op::Kind::kUnsubscribe, std::move(topic),
                               {std::move(url), ""}, std::move(done)));
}

void RocksDBStore::DeleteTopic(std::string topic, StatusCallback done) {
  impl_->Enqueue(Impl::TopicOp(Impl::Op::Kind::kDeleteTopic, std::move(topic),
                               {}, std::move(done)));
}

absl::StatusOr<std::vector<Subscriber>> RocksDBStore::GetTopic(
    absl::string_view topic) {
  absl::StatusOr<TopicRecord> record =
      ReadTopic(impl_->db_, impl_->cfs_, topic, nullptr);
  if (!record.ok()) return record.status();
  std::vector<Subscriber> subscribers;
  subscribers.reserve(record->subscribers_size());
  for (TopicRecord::Subscriber& s : *record->mutable_subscribers()) {
    subscribers.push_back(
        {std::move(*s.mutable_url()), std::move(*s.mutable_remark())});
  }
  return subscribers;
}

absl::StatusOr<std::vector<std::string>> RocksDBStore::ListTopics() {
  std::vector<std::string> names;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db_->NewIterator(rocksdb::ReadOptions(), impl_->cfs_.topics));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    names.emplace_back(it->key().data(), it->key().size());
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: list topics");
  }
  return names;
}

}  // namespace dtmd::storage
