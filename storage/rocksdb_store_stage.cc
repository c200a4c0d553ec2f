// RocksDBStore: what each operation reads and writes (the layout is in
// rocksdb_store.h).
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/encoding.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {
namespace {

// An iterator over gid's branch keys in cf. `upper`, `upper_slice` and
// `read_options` keep the bound the iterator uses alive.
std::unique_ptr<rocksdb::Iterator> BranchIterator(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, absl::string_view gid,
    std::string* upper, rocksdb::Slice* upper_slice,
    rocksdb::ReadOptions* read_options) {
  *upper = BranchPrefixEnd(gid);
  *upper_slice = rocksdb::Slice(*upper);
  read_options->iterate_upper_bound = upper_slice;
  return std::unique_ptr<rocksdb::Iterator>(db->NewIterator(*read_options, cf));
}

template <typename Message>
bool Parse(const rocksdb::Slice& value, Message* message) {
  return message->ParseFromArray(value.data(), static_cast<int>(value.size()));
}

absl::Status Corrupt(absl::string_view what, absl::string_view gid) {
  return absl::DataLossError(absl::StrCat("corrupt ", what, " for gid ", gid));
}

}  // namespace

absl::StatusOr<TransRecord> ReadTrans(rocksdb::DB* db, const Families& cfs,
                                      absl::string_view gid,
                                      const GroupOverlay* overlay) {
  TransRecord record;
  if (overlay != nullptr && overlay->TransDeleted(gid)) {
    return absl::NotFoundError(absl::StrCat("transaction ", gid, " not found"));
  }
  if (const std::string* staged =
          overlay == nullptr ? nullptr : overlay->Trans(gid);
      staged != nullptr) {
    if (!record.ParseFromString(*staged)) return Corrupt("record", gid);
    return record;
  }
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cfs.trans,
                              rocksdb::Slice(gid.data(), gid.size()), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("transaction ", gid, " not found"));
  }
  if (!s.ok()) return FromRocks(s, "RocksDBStore: read trans");
  if (!record.ParseFromString(value)) return Corrupt("record", gid);
  return record;
}

absl::StatusOr<std::vector<BranchRecord>> ReadBranches(rocksdb::DB* db,
                                                       const Families& cfs,
                                                       absl::string_view gid) {
  std::string def_upper, state_upper;
  rocksdb::Slice def_slice, state_slice;
  rocksdb::ReadOptions def_options, state_options;
  std::unique_ptr<rocksdb::Iterator> defs = BranchIterator(
      db, cfs.branch_defs, gid, &def_upper, &def_slice, &def_options);
  std::unique_ptr<rocksdb::Iterator> states = BranchIterator(
      db, cfs.branch_states, gid, &state_upper, &state_slice, &state_options);
  const std::string prefix = BranchPrefix(gid);
  std::vector<BranchDefinition> definitions;
  std::vector<BranchState> branch_states;
  std::vector<int32_t> positions;
  // Every branch has a definition, which holds its state at creation; a
  // state key exists once the branch changed (never without a definition).
  states->Seek(prefix);
  for (defs->Seek(prefix); defs->Valid(); defs->Next()) {
    BranchDefinition& definition = definitions.emplace_back();
    if (!Parse(defs->value(), &definition)) {
      return Corrupt("branch definition", gid);
    }
    if (states->Valid() && states->key().compare(defs->key()) < 0) {
      return Corrupt("branch state (no definition)", gid);
    }
    if (states->Valid() && states->key() == defs->key()) {
      if (!Parse(states->value(), &branch_states.emplace_back())) {
        return Corrupt("branch state", gid);
      }
      states->Next();
    } else {
      branch_states.push_back(definition.initial_state());
    }
    positions.push_back(BranchKeyPosition(
        absl::string_view(defs->key().data(), defs->key().size())));
  }
  if (states->Valid()) return Corrupt("branch state (no definition)", gid);
  if (!defs->status().ok()) {
    return FromRocks(defs->status(), "RocksDBStore: scan branches");
  }
  if (!states->status().ok()) {
    return FromRocks(states->status(), "RocksDBStore: scan branch states");
  }

  std::vector<BranchRecord> branches;
  branches.reserve(definitions.size());
  for (size_t i = 0; i < definitions.size(); ++i) {
    const BranchDefinition* payload_source = nullptr;
    if (definitions[i].has_payload_position()) {
      auto it = std::lower_bound(positions.begin(), positions.begin() + i,
                                 definitions[i].payload_position());
      if (it == positions.begin() + i ||
          *it != definitions[i].payload_position()) {
        return Corrupt("shared payload reference", gid);
      }
      payload_source = &definitions[it - positions.begin()];
    }
    branches.push_back(MergeBranch(gid, positions[i], definitions[i],
                                   payload_source, branch_states[i]));
  }
  return branches;
}

absl::StatusOr<int32_t> CountBranches(rocksdb::DB* db, const Families& cfs,
                                      absl::string_view gid,
                                      const GroupOverlay* overlay) {
  const int32_t staged = overlay == nullptr ? 0 : overlay->NewBranches(gid);
  if (overlay != nullptr && overlay->BranchesCleared(gid)) return staged;
  std::string upper;
  rocksdb::Slice upper_slice;
  rocksdb::ReadOptions read_options;
  std::unique_ptr<rocksdb::Iterator> it = BranchIterator(
      db, cfs.branch_defs, gid, &upper, &upper_slice, &read_options);
  // Positions are dense from 0, so the last key tells the count; branches
  // staged in this group come after the stored ones.
  it->SeekForPrev(upper);
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: count branches");
  }
  if (!it->Valid() || !it->key().starts_with(BranchPrefix(gid))) return staged;
  const int32_t last =
      BranchKeyPosition(absl::string_view(it->key().data(), it->key().size()));
  if (last < 0) return Corrupt("branch key", gid);
  return last + 1 + staged;
}

namespace {

// The record of gid if its status is `expected`; NOT_FOUND or
// FAILED_PRECONDITION (naming the stored status) otherwise.
absl::StatusOr<TransRecord> ReadIfStatus(rocksdb::DB* db, const Families& cfs,
                                         absl::string_view gid,
                                         absl::string_view expected,
                                         const GroupOverlay* overlay) {
  absl::StatusOr<TransRecord> stored = ReadTrans(db, cfs, gid, overlay);
  if (stored.ok() && stored->status() != expected) {
    return absl::FailedPreconditionError(absl::StrCat("transaction ", gid,
                                                      " is ", stored->status(),
                                                      ", expected ", expected));
  }
  return stored;
}

}  // namespace

RocksDBStore::Impl::Outcome RocksDBStore::Impl::Apply(
    Op& op, Overlay* batch, rocksdb::Status* batch_error,
    std::optional<int64_t>* min_due_ms) {
  Outcome outcome;
  if (!op.rejected.ok()) {
    outcome.status = op.rejected;
    return outcome;
  }
  Changes changes;
  switch (op.kind) {
    case Op::Kind::kCreate:
      outcome.status = StageCreate(op, batch, &outcome.create, &changes);
      break;
    case Op::Kind::kUpdate:
      outcome.status = StageUpdate(op, batch, &changes);
      break;
    case Op::Kind::kPutBranches:
      outcome.status = StagePutBranches(op, &changes);
      break;
    case Op::Kind::kAppend:
      outcome.status = StageAppend(op, batch, &changes);
      break;
    case Op::Kind::kSubscribe:
      outcome.status = StageSubscribe(op, batch, &changes);
      break;
    case Op::Kind::kUnsubscribe:
      outcome.status = StageUnsubscribe(op, batch, &changes);
      break;
    case Op::Kind::kDeleteTopic:
      outcome.status = StageDeleteTopic(op, batch, &changes);
      break;
    case Op::Kind::kDeleteFinished:
      outcome.status =
          StageDeleteFinished(op, batch, &changes, &outcome.deleted);
      break;
  }
  if (!outcome.status.ok()) return outcome;
  for (Change& change : changes) {
    rocksdb::Status s =
        change.is_delete
            ? batch->batch()->Delete(change.cf, change.key)
            : batch->batch()->Put(change.cf, change.key, change.value);
    // What later ops of the group read: records, branch counts, topics.
    if (!change.is_delete && change.cf == cfs_.trans) {
      batch->PutTrans(change.key, std::move(change.value));
    } else if (change.is_delete && change.cf == cfs_.trans) {
      batch->DeleteTrans(change.key);
    } else if (!change.is_delete && change.cf == cfs_.branch_defs) {
      batch->AddNewBranch(BranchKeyGid(change.key));
    } else if (change.cf == cfs_.topics) {
      batch->PutTopic(change.key, change.is_delete
                                      ? std::nullopt
                                      : std::optional<std::string>(
                                            std::move(change.value)));
    }
    // Cannot fail without a batch size limit; if it does, the batch may
    // hold part of this op, so the whole group must fail.
    if (!s.ok() && batch_error->ok()) *batch_error = s;
    if (change.cf == cfs_.due && !change.is_delete) {
      const int64_t time = DueKeyTime(change.key).value_or(0);
      if (!min_due_ms->has_value() || time < **min_due_ms) *min_due_ms = time;
    }
  }
  return outcome;
}

absl::Status RocksDBStore::Impl::StageCreate(Op& op, Overlay* batch,
                                             CreateResult* result,
                                             Changes* changes) {
  const std::string& gid = op.trans.gid();
  if (absl::Status valid = ValidateGid(gid); !valid.ok()) return valid;
  absl::StatusOr<TransRecord> stored = ReadTrans(db_, cfs_, gid, batch);
  if (stored.ok()) {
    result->created = false;
    result->existing = *std::move(stored);
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(stored.status())) return stored.status();

  changes->push_back({cfs_.trans, gid, op.trans.SerializeAsString()});
  for (size_t i = 0; i < op.branches.size(); ++i) {
    op.branches[i].set_position(static_cast<int32_t>(i));
  }
  StageNewBranches(gid, op.branches, changes);
  StageDueMove(gid, nullptr, op.trans, changes);
  StageFinishedMove(gid, nullptr, op.trans, changes);
  result->created = true;
  return absl::OkStatus();
}

absl::Status RocksDBStore::Impl::StageUpdate(Op& op, Overlay* batch,
                                             Changes* changes) {
  const std::string& gid = op.trans.gid();
  if (absl::Status valid = ValidateGid(gid); !valid.ok()) return valid;
  absl::StatusOr<TransRecord> stored =
      ReadIfStatus(db_, cfs_, gid, op.expected_status, batch);
  if (!stored.ok()) return stored.status();
  changes->push_back({cfs_.trans, gid, op.trans.SerializeAsString()});
  if (absl::Status s = StageBranchStates(gid, op.branches, changes); !s.ok()) {
    return s;
  }
  StageDueMove(gid, &*stored, op.trans, changes);
  StageFinishedMove(gid, &*stored, op.trans, changes);
  return absl::OkStatus();
}

absl::Status RocksDBStore::Impl::StagePutBranches(Op& op, Changes* changes) {
  if (absl::Status valid = ValidateGid(op.gid); !valid.ok()) return valid;
  return StageBranchStates(op.gid, op.branches, changes);
}

absl::Status RocksDBStore::Impl::StageAppend(Op& op, Overlay* batch,
                                             Changes* changes) {
  if (absl::Status valid = ValidateGid(op.gid); !valid.ok()) return valid;
  absl::StatusOr<TransRecord> stored =
      ReadIfStatus(db_, cfs_, op.gid, op.expected_status, batch);
  if (!stored.ok()) return stored.status();
  absl::StatusOr<int32_t> first = CountBranches(db_, cfs_, op.gid, batch);
  if (!first.ok()) return first.status();
  for (size_t i = 0; i < op.branches.size(); ++i) {
    op.branches[i].set_position(*first + static_cast<int32_t>(i));
  }
  StageNewBranches(op.gid, op.branches, changes);
  return absl::OkStatus();
}

void RocksDBStore::Impl::StageNewBranches(absl::string_view gid,
                                          std::vector<BranchRecord>& branches,
                                          Changes* changes) {
  std::vector<BranchDefinition> definitions;
  definitions.reserve(branches.size());
  for (BranchRecord& branch : branches) {
    branch.set_gid(std::string(gid));
    definitions.push_back(DefinitionOf(branch));
  }
  SharePayloads(branches, definitions);
  // The state at creation rides in the definition: a new branch costs one
  // key; its state key appears with its first change.
  for (size_t i = 0; i < branches.size(); ++i) {
    *definitions[i].mutable_initial_state() = StateOf(branches[i]);
    changes->push_back({cfs_.branch_defs,
                        BranchKey(gid, branches[i].position()),
                        definitions[i].SerializeAsString()});
  }
}

absl::Status RocksDBStore::Impl::StageBranchStates(
    absl::string_view gid, std::vector<BranchRecord>& branches,
    Changes* changes) {
  for (BranchRecord& branch : branches) {
    if (branch.position() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "negative branch position ", branch.position(), " for gid ", gid));
    }
    changes->push_back({cfs_.branch_states, BranchKey(gid, branch.position()),
                        StateOf(branch).SerializeAsString()});
  }
  return absl::OkStatus();
}

void RocksDBStore::Impl::StageDueMove(absl::string_view gid,
                                      const TransRecord* old_trans,
                                      const TransRecord& new_trans,
                                      Changes* changes) {
  // Delete before put: when the time is unchanged the put must win.
  if (old_trans != nullptr && !IsFinalStatus(old_trans->status())) {
    changes->push_back({cfs_.due, DueKey(old_trans->next_cron_time_ms(), gid),
                        "", /*is_delete=*/true});
  }
  if (!IsFinalStatus(new_trans.status())) {
    changes->push_back(
        {cfs_.due, DueKey(new_trans.next_cron_time_ms(), gid), ""});
  }
}

}  // namespace dtmd::storage
