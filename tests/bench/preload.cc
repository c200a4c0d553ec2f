// dtmd-preload: fills a dtmd data directory with finished saga transactions
// before dtmd starts, for runs at scale ("1,000,000 stored transactions").
//
// Each transaction is a succeeded 2-step saga (gid "preload-<i>", 4 branches:
// compensations prepared, actions succeed, 64-byte payloads), written with
// CreateTransaction(kNoSync) through RocksDBStore, the same code path and
// encoding dtmd uses, with a bounded number of writes in flight. A final
// kSync write makes everything durable before the store is closed. A gid that
// already exists is left as it is (counted as "existing"), so a rerun on the
// same directory is harmless.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/rocksdb_store.h"
#include "tests/bench/sample_records.h"
#include "tests/bench/write_window.h"

ABSL_FLAG(std::string, data_dir, "",
          "dtmd data directory to fill (required); dtmd must not be running.");
ABSL_FLAG(int64_t, count, 1000000, "Transactions to write.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text.");

namespace dtmd::bench {
namespace {

using storage::BranchRecord;
using storage::CreateResult;
using storage::Durability;
using storage::RocksDBStore;
using storage::TransRecord;

constexpr int kMaxInFlight = 10000;

using Transaction = NewTransaction;

// A saga that started at `now_ms`, took 20 ms and succeeded.
Transaction MakeFinishedSaga(int64_t now_ms) {
  Transaction t = SampleSaga("sample", 2, now_ms);
  MarkFinished(&t, now_ms + 20);
  return t;
}

struct Result {
  double write_seconds = 0;  // until every write completed.
  double total_seconds = 0;  // including the final sync and close.
  int64_t existing = 0;
};

absl::StatusOr<Result> Preload(const std::string& dir, int64_t count) {
  const absl::Time start = absl::Now();
  storage::RocksDBStoreOptions options;
  options.path = dir;
  absl::StatusOr<std::unique_ptr<RocksDBStore>> opened =
      RocksDBStore::Open(options);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<RocksDBStore> store = *std::move(opened);

  const Transaction sample = MakeFinishedSaga(absl::ToUnixMillis(start));
  WriteWindow window(kMaxInFlight);
  for (int64_t i = 0; i < count; ++i) {
    window.Acquire();
    Transaction t = sample;
    t.trans.set_gid(absl::StrCat("preload-", i));
    store->CreateTransaction(
        std::move(t.trans), std::move(t.branches), Durability::kNoSync,
        [&window](absl::StatusOr<CreateResult> r) {
          window.Release(r.status(), r.ok() && !r->created);
        });
    if (i % 4096 == 0 && !window.error().ok()) break;
  }
  store->Flush();  // Also: every callback has returned.
  Result result;
  result.write_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (absl::Status error = window.error(); !error.ok()) return error;
  result.existing = window.existing();

  // A synced write syncs the WAL holding everything before it, even when its
  // gid exists already and nothing is written.
  Transaction sentinel = sample;
  sentinel.trans.set_gid("preload-sentinel");
  absl::Notification synced;
  absl::Status sync_status;
  store->CreateTransaction(std::move(sentinel.trans),
                           std::move(sentinel.branches), Durability::kSync,
                           [&](absl::StatusOr<CreateResult> r) {
                             sync_status = r.status();
                             synced.Notify();
                           });
  synced.WaitForNotification();
  store->Flush();
  if (!sync_status.ok()) return sync_status;
  // The shape a long-running store has: everything compacted.
  if (absl::Status compacted = store->CompactAll(); !compacted.ok()) {
    return compacted;
  }
  store.reset();
  result.total_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

// Sum of the sizes of the regular files under `dir`.
int64_t DirectoryBytes(const std::string& dir) {
  int64_t bytes = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const uintmax_t size = it->file_size(size_ec);
      if (!size_ec) bytes += static_cast<int64_t>(size);
    }
  }
  return bytes;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const int64_t count = absl::GetFlag(FLAGS_count);
  if (data_dir.empty() || count < 0) {
    std::fprintf(stderr,
                 "usage: dtmd-preload --data_dir=DIR [--count=1000000] "
                 "[--json]\n");
    return 2;
  }
  absl::StatusOr<Result> result = Preload(data_dir, count);
  if (!result.ok()) {
    std::fprintf(stderr, "dtmd-preload: %s\n",
                 result.status().ToString().c_str());
    return 1;
  }
  const int64_t bytes = DirectoryBytes(data_dir);
  const double rate =
      result->write_seconds > 0 ? count / result->write_seconds : 0;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"count\":%lld,\"existing\":%lld,\"write_seconds\":%.3f,"
        "\"total_seconds\":%.3f,\"transactions_per_s\":%.0f,"
        "\"data_dir_bytes\":%lld}\n",
        static_cast<long long>(count), static_cast<long long>(result->existing),
        result->write_seconds, result->total_seconds, rate,
        static_cast<long long>(bytes));
  } else {
    std::printf(
        "preloaded %lld transactions (%lld already existed) in %.2f s "
        "(%.0f/s); %.2f s with sync and close; %s holds %.1f MiB\n",
        static_cast<long long>(count), static_cast<long long>(result->existing),
        result->write_seconds, rate, result->total_seconds, data_dir.c_str(),
        bytes / 1048576.0);
  }
  return 0;
}

}  // namespace
}  // namespace dtmd::bench

int main(int argc, char** argv) { return dtmd::bench::Main(argc, argv); }
