// RocksDBStore::Open: options, the checks that refuse damaged or foreign
// data (integrity.h), and creation of a new store.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/table_properties_collectors.h"
#include "storage/integrity.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {
namespace {

constexpr char kFormatKey[] = "dtmd.format";
constexpr char kFormatVersion[] = "2";
constexpr char kAcceptHint[] =
    " Restore the data dir from a backup, or start with --accept_data_loss "
    "to continue with what can be recovered.";

// Set (synced) once every final record is in the finished family: at
// creation, or by the backfill of a store written before that family.
constexpr char kFinishedIndexKey[] = "dtmd.finished_index";

// The column families of format 2, in Families order. `topics` and
// `finished` came later: a format-2 store written before them gets them
// (empty) at open, and the finished family is filled from the records;
// every other family must be there.
constexpr char kTopicsFamily[] = "topics";
constexpr char kFinishedFamily[] = "finished";
std::vector<std::string> FamilyNames() {
  return {rocksdb::kDefaultColumnFamilyName,
          "trans",
          "branch_defs",
          "branch_states",
          "due",
          kTopicsFamily,
          kFinishedFamily};
}

struct DbOptions {
  rocksdb::DBOptions db;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
};

DbOptions MakeOptions(const RocksDBStoreOptions& options, rocksdb::Env* env,
                      std::shared_ptr<StoreHealth> health) {
  DbOptions result;
  rocksdb::DBOptions& db = result.db;
  db.create_missing_column_families = true;
  db.max_background_jobs = 2;
  db.info_log = NewGlogInfoLogger();
  db.listeners.push_back(NewStoreHealthListener(std::move(health)));
  if (env != nullptr) db.env = env;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(
      static_cast<size_t>(std::max<int64_t>(options.block_cache_mib, 1)) << 20);
  rocksdb::ColumnFamilyOptions cf_options;  // Level compaction by default.
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Point lookups by gid dominate on trans: a bloom filter saves block reads.
  rocksdb::BlockBasedTableOptions trans_table = table;
  trans_table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions trans_options = cf_options;
  trans_options.table_factory.reset(
      rocksdb::NewBlockBasedTableFactory(trans_table));
  // Every update deletes a due key and inserts another: files dense with
  // tombstones are compacted early, so that scans do not wade through them.
  rocksdb::ColumnFamilyOptions due_options = cf_options;
  due_options.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(128, 64, 0.5));
  // Retention deletes whole transactions: files where deletions pile up are
  // compacted early too, which drops them with the records they delete.
  rocksdb::ColumnFamilyOptions record_options = cf_options;
  record_options.table_properties_collector_factories =
      due_options.table_properties_collector_factories;
  trans_options.table_properties_collector_factories =
      due_options.table_properties_collector_factories;

  const std::vector<std::string> names = FamilyNames();
  result.families = {{names[0], cf_options},     {names[1], trans_options},
                     {names[2], record_options}, {names[3], record_options},
                     {names[4], due_options},    {names[5], cf_options},
                     {names[6], due_options}};
  return result;
}

// What a read-only look at an existing store found.
struct Existing {
  std::string format;  // Empty if there is no format key.
  bool empty = true;   // No key in any column family.
  uint64_t sequence = 0;
  std::vector<std::string> families;
};

// Opens the store read-only (which neither replays into new files nor
// deletes any) to look at it before RocksDB's recovery changes anything.
absl::StatusOr<Existing> Inspect(const std::string& path,
                                 const DbOptions& options) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options.db, path, &names);
  if (!s.ok()) {
    return absl::DataLossError(absl::StrCat(
        "cannot read the store's MANIFEST in ", path, ": ", s.ToString()));
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) {
    families.push_back({name, rocksdb::ColumnFamilyOptions()});
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(options.db, path, families, &handles, &raw);
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("cannot read the store in ", path, ": ", s.ToString()));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  Existing existing;
  existing.families = names;
  existing.sequence = db->GetLatestSequenceNumber();
  std::string format;
  s = db->Get(rocksdb::ReadOptions(), handles[0], kFormatKey, &format);
  if (s.ok()) existing.format = format.empty() ? "(empty)" : format;
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), handle));
    it->SeekToFirst();
    if (it->Valid()) existing.empty = false;
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db->Close().PermitUncheckedError();
  return existing;
}

// Refuses an existing store that is damaged or of another layout. Sets
// *initialize when the store holds nothing yet (created, then interrupted
// before the format key was written), and *index_finished when it has no
// finished family (the open creates it empty; FinishOpen fills it).
absl::Status CheckExisting(const RocksDBStoreOptions& options,
                           const DbOptions& db_options, bool has_marker,
                           bool* initialize, bool* index_finished) {
  const std::string& path = options.path;
  const bool accept = options.accept_data_loss;
  if (absl::Status s = CheckManifestComplete(path); !s.ok()) {
    if (!accept)
      return absl::DataLossError(absl::StrCat(s.message(), kAcceptHint));
    LOG(ERROR) << "RocksDBStore: " << s.message()
               << "; opening anyway (--accept_data_loss)";
  }
  absl::StatusOr<Existing> existing = Inspect(path, db_options);
  if (!existing.ok()) {
    if (!accept) {
      return absl::DataLossError(
          absl::StrCat(existing.status().message(), ".", kAcceptHint));
    }
    LOG(ERROR) << "RocksDBStore: " << existing.status().message()
               << "; opening anyway (--accept_data_loss)";
    return absl::OkStatus();
  }
  *index_finished =
      std::find(existing->families.begin(), existing->families.end(),
                kFinishedFamily) == existing->families.end();
  if (!existing->format.empty() && existing->format != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the store in ", path, " has format ", existing->format,
        "; this dtmd reads format ", kFormatVersion,
        ". Use the dtmd that wrote it, or move the data dir away."));
  }
  if (!existing->format.empty()) {
    // create_missing_column_families would quietly replace a lost family
    // with an empty one; only the family added to format 2 later may be
    // missing.
    for (const std::string& name : FamilyNames()) {
      if (name == kTopicsFamily || name == kFinishedFamily ||
          std::find(existing->families.begin(), existing->families.end(),
                    name) != existing->families.end()) {
        continue;
      }
      const std::string missing =
          absl::StrCat("the store in ", path, " has no column family '", name,
                       "': its MANIFEST is damaged.");
      if (!accept)
        return absl::DataLossError(absl::StrCat(missing, kAcceptHint));
      LOG(ERROR) << "RocksDBStore: " << missing
                 << " Opening anyway (--accept_data_loss)";
    }
  }
  if (existing->format.empty()) {
    if (!existing->empty) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the store in ", path,
          " has no format key: it was written by an older dtmd (layout 1), "
          "which this dtmd cannot read. Move the data dir away."));
    }
    if (has_marker && !accept) {
      return absl::DataLossError(
          absl::StrCat("the store in ", path, " is empty, but ", kMarkerFile,
                       " says it held data: its MANIFEST or files are damaged.",
                       kAcceptHint));
    }
    *initialize = true;
  }
  absl::StatusOr<uint64_t> synced = ReadSyncedSequence(path);
  if (!synced.ok()) {
    LOG(WARNING) << "RocksDBStore: " << synced.status() << "; not checked";
  } else if (existing->sequence < *synced) {
    absl::Status loss = absl::DataLossError(absl::StrCat(
        "the store in ", path, " recovers up to sequence ", existing->sequence,
        ", but sequence ", *synced,
        " was synced and acknowledged: its WAL or MANIFEST is damaged or cut "
        "short."));
    if (!accept)
      return absl::DataLossError(absl::StrCat(loss.message(), kAcceptHint));
    LOG(ERROR) << "RocksDBStore: " << loss.message()
               << " Opening anyway (--accept_data_loss)";
  }
  return absl::OkStatus();
}

// Completes a store just opened read-write: the format key of a new store,
// the synced sequence (everything recovered was flushed to synced files by
// the open; after an accepted loss this also forgets the higher number that
// was lost), and the marker that says this dir holds a store.
absl::Status FinishOpen(const std::string& path, rocksdb::DB* db,
                        const Families& cfs, bool initialize,
                        bool index_finished, SyncedSequenceFile& synced_file,
                        int64_t* backfilled) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  if (initialize) {
    rocksdb::WriteBatch batch;
    rocksdb::Status s = batch.Put(cfs.meta, kFormatKey, kFormatVersion);
    if (s.ok()) s = batch.Put(cfs.meta, kFinishedIndexKey, "1");
    if (s.ok()) s = db->Write(sync, &batch);
    if (!s.ok()) return FromRocks(s, "RocksDBStore: write format");
  } else {
    std::string indexed;
    rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), cfs.meta, kFinishedIndexKey, &indexed);
    if (s.IsNotFound() || (s.ok() && index_finished)) {
      // Written before the finished family (or the family was lost and the
      // open is accepting the loss): index it once. An interrupted backfill
      // is redone; its writes are idempotent.
      const absl::Time start = absl::Now();
      absl::StatusOr<int64_t> count = BackfillFinishedIndex(db, cfs);
      if (!count.ok()) return count.status();
      s = db->Put(sync, cfs.meta, kFinishedIndexKey, "1");
      if (!s.ok()) return FromRocks(s, "RocksDBStore: write index marker");
      *backfilled = *count;
      LOG(INFO) << "RocksDBStore: indexed " << *count
                << " finished transactions for retention in "
                << absl::ToInt64Milliseconds(absl::Now() - start) << " ms";
    } else if (!s.ok()) {
      return FromRocks(s, "RocksDBStore: read index marker");
    }
  }
  if (absl::Status s = synced_file.Record(db->GetLatestSequenceNumber());
      !s.ok()) {
    return s;
  }
  if (FileExists(path, kMarkerFile)) return absl::OkStatus();
  return WriteMarker(path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDBStore>> RocksDBStore::Open(
    const RocksDBStoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("RocksDBStore: empty path");
  }
  if (options.max_writes_per_batch < 1 || options.max_queued_writes < 1 ||
      options.max_queued_bytes < 1) {
    return absl::InvalidArgumentError(
        "RocksDBStore: max_writes_per_batch, max_queued_writes and "
        "max_queued_bytes must be at least 1");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "RocksDBStore: cannot create ", options.path, ": ", ec.message()));
  }
  absl::StatusOr<DirLock> lock = DirLock::Acquire(options.path);
  if (!lock.ok()) return lock.status();

  absl::StatusOr<SyncedSequenceFile> synced =
      SyncedSequenceFile::Open(options.path);
  if (!synced.ok()) return synced.status();
  Impl::Resources resources{*std::move(lock), nullptr,
                            std::make_shared<storage::StoreHealth>(),
                            *std::move(synced)};
  if (options.file_system != nullptr) {
    resources.env = rocksdb::NewCompositeEnv(options.file_system);
  }
  DbOptions db_options =
      MakeOptions(options, resources.env.get(), resources.health);

  const bool has_marker = FileExists(options.path, kMarkerFile);
  const bool has_db = FileExists(options.path, "CURRENT");
  bool initialize = !has_db;
  bool index_finished = false;
  if (has_db) {
    if (absl::Status s = CheckExisting(options, db_options, has_marker,
                                       &initialize, &index_finished);
        !s.ok()) {
      return s;
    }
  } else if (has_marker && !options.accept_data_loss) {
    return absl::DataLossError(absl::StrCat(
        "the data dir ", options.path, " held a store (", kMarkerFile,
        " is there) but its RocksDB files are gone (no CURRENT); refusing to "
        "start empty.",
        kAcceptHint));
  }

  db_options.db.create_if_missing = !has_db || options.accept_data_loss;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options.db, options.path,
                                        db_options.families, &handles, &db);
  if (!s.ok()) {
    return FromRocks(s, absl::StrCat("RocksDBStore: open ", options.path));
  }
  absl::Status prepared =
      FinishOpen(options.path, db, FamiliesOf(handles), initialize,
                 index_finished, resources.synced_file, &resources.backfilled);
  if (!prepared.ok()) {
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    db->Close().PermitUncheckedError();
    delete db;
    return prepared;
  }
  std::unique_ptr<RocksDBStore> store(new RocksDBStore(std::make_unique<Impl>(
      options, std::move(resources), db, std::move(handles))));
  return store;
}

}  // namespace dtmd::storage
