// dtmd-storage-probe: how many synced writes per second the data disk gives
// RocksDBStore, which bounds how many transactions dtmd can acknowledge.
//
// Three closed-loop measurements on a fresh store inside --data_dir (removed
// afterwards), each writing realistic 2-step saga creations (a TransRecord and
// 4 BranchRecords with 64-byte payloads, unique gids):
//   fsync:        one kSync write in flight: writes/s = fsyncs/s of the disk.
//   group commit: --writers kSync writes in flight: the writer thread syncs
//                 every write queued during the previous fsync in one batch.
//   no sync:      --writers kNoSync writes in flight: the CPU/WAL limit.
// Each completion callback issues that chain's next write, so nothing but
// the store's writer thread does the work.
#include <unistd.h>

#include <atomic>
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
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "storage/rocksdb_store.h"
#include "tests/bench/sample_records.h"

ABSL_FLAG(std::string, data_dir, "",
          "Directory on the disk to probe (required); a fresh subdirectory is "
          "created in it and removed afterwards.");
ABSL_FLAG(int, writers, 64, "Writes in flight for the group-commit runs.");
ABSL_FLAG(double, duration, 5, "Seconds per measurement.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of a table.");

namespace dtmd::bench {
namespace {

using storage::BranchRecord;
using storage::CreateResult;
using storage::Durability;
using storage::RocksDBStore;
using storage::TransRecord;

using Transaction = NewTransaction;

struct RunResult {
  int64_t writes = 0;
  double seconds = 0;
  int64_t synced_batches = 0;
  int64_t write_batches = 0;
  double WritesPerSecond() const { return writes / seconds; }
};

// `in_flight` chains of CreateTransaction writes, each chain issuing its next
// write from the previous one's callback until the deadline passes.
class ClosedLoop {
 public:
  ClosedLoop(RocksDBStore* store, std::string gid_prefix, Durability durability)
      : store_(store),
        prefix_(std::move(gid_prefix)),
        durability_(durability),
        template_(SampleSaga("sample", 2, absl::ToUnixMillis(absl::Now()))) {}

  absl::StatusOr<RunResult> Run(int in_flight, absl::Duration duration) {
    const RocksDBStore::Stats before = store_->GetStats();
    const absl::Time start = absl::Now();
    deadline_ = start + duration;
    {
      absl::MutexLock lock(&mu_);
      active_ = in_flight;
    }
    for (int i = 0; i < in_flight; ++i) Issue();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ClosedLoop::Finished));
    }
    const absl::Time end = absl::Now();
    // Returns once the last callback has returned, so *this may go.
    store_->Flush();
    const RocksDBStore::Stats after = store_->GetStats();
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return error_;
    RunResult result;
    result.writes = completed_;
    result.seconds = absl::ToDoubleSeconds(end - start);
    result.synced_batches = after.synced_batches - before.synced_batches;
    result.write_batches = after.write_batches - before.write_batches;
    return result;
  }

 private:
  bool Finished() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return active_ == 0; }

  void Issue() {
    Transaction t = template_;
    // 22 characters, like the gids DTM's NewGid hands out.
    t.trans.set_gid(absl::StrCat(
        prefix_, absl::Dec(next_gid_.fetch_add(1), absl::kZeroPad16)));
    store_->CreateTransaction(
        std::move(t.trans), std::move(t.branches), durability_,
        [this](absl::StatusOr<CreateResult> result) { OnDone(result); });
  }

  // On the store's writer thread.
  void OnDone(const absl::StatusOr<CreateResult>& result) {
    bool again = false;
    {
      absl::MutexLock lock(&mu_);
      if (!result.ok() && error_.ok()) error_ = result.status();
      if (result.ok() && !result->created && error_.ok()) {
        error_ = absl::InternalError("probe gid already existed");
      }
      ++completed_;
      again = error_.ok() && absl::Now() < deadline_;
      if (!again) --active_;
    }
    if (again) Issue();
  }

  RocksDBStore* const store_;
  const std::string prefix_;  // 6 characters.
  const Durability durability_;
  const Transaction template_;
  absl::Time deadline_;
  std::atomic<int64_t> next_gid_{0};
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;  // chains still running.
  int64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

struct Report {
  RunResult fsync, group, nosync;
};

absl::StatusOr<Report> Probe(const std::string& dir, int writers,
                             absl::Duration duration) {
  storage::RocksDBStoreOptions options;
  options.path = dir;
  absl::StatusOr<std::unique_ptr<RocksDBStore>> store =
      RocksDBStore::Open(options);
  if (!store.ok()) return store.status();
  Report report;
  absl::StatusOr<RunResult> run =
      ClosedLoop(store->get(), "fsync-", Durability::kSync).Run(1, duration);
  if (!run.ok()) return run.status();
  report.fsync = *run;
  run = ClosedLoop(store->get(), "group-", Durability::kSync)
            .Run(writers, duration);
  if (!run.ok()) return run.status();
  report.group = *run;
  run = ClosedLoop(store->get(), "nosyn-", Durability::kNoSync)
            .Run(writers, duration);
  if (!run.ok()) return run.status();
  report.nosync = *run;
  return report;
}

double AverageGroup(const RunResult& run, bool synced) {
  const int64_t batches = synced ? run.synced_batches : run.write_batches;
  return batches > 0 ? static_cast<double>(run.writes) / batches : 0;
}

void PrintTable(const Report& r, int writers) {
  std::printf("%-28s %12s %10s %10s\n", "measurement", "writes/s", "batches",
              "avg group");
  auto row = [](const std::string& name, const RunResult& run, bool synced) {
    std::printf(
        "%-28s %12.0f %10lld %10.1f\n", name.c_str(), run.WritesPerSecond(),
        static_cast<long long>(synced ? run.synced_batches : run.write_batches),
        AverageGroup(run, synced));
  };
  row("fsync (1 in flight)", r.fsync, true);
  row(absl::StrCat("group commit (", writers, " in flight)"), r.group, true);
  row(absl::StrCat("no sync (", writers, " in flight)"), r.nosync, false);
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const int writers = absl::GetFlag(FLAGS_writers);
  const double duration_s = absl::GetFlag(FLAGS_duration);
  if (data_dir.empty() || writers < 1 || duration_s <= 0) {
    std::fprintf(stderr,
                 "usage: dtmd-storage-probe --data_dir=DIR [--writers=64] "
                 "[--duration=5] [--json]\n");
    return 2;
  }
  const std::filesystem::path dir =
      std::filesystem::path(data_dir) /
      absl::StrCat("dtmd-storage-probe-", getpid(), "-",
                   absl::ToUnixMicros(absl::Now()));
  absl::StatusOr<Report> report =
      Probe(dir.string(), writers, absl::Seconds(duration_s));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!report.ok()) {
    std::fprintf(stderr, "dtmd-storage-probe: %s\n",
                 report.status().ToString().c_str());
    return 1;
  }
  if (!absl::GetFlag(FLAGS_json)) {
    PrintTable(*report, writers);
    return 0;
  }
  nlohmann::json out = {
      {"fsync_writes_per_s", report->fsync.WritesPerSecond()},
      {"group_commit_writes_per_s", report->group.WritesPerSecond()},
      {"group_commit_writers", writers},
      {"avg_group_size", AverageGroup(report->group, true)},
      {"nosync_writes_per_s", report->nosync.WritesPerSecond()},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace dtmd::bench

int main(int argc, char** argv) { return dtmd::bench::Main(argc, argv); }
