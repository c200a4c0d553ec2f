// dtmd_micro_bench: the per-transaction CPU costs under dtmd's throughput:
// parsing a saga, planning and applying results (pure state machine), record
// encoding, and the store's unsynced write path (RocksDBStore's writer
// thread, with a window of writes in flight as dtmd keeps them).
//
// The store benchmarks measure wall time (the work is on the writer thread)
// and include draining the window at the end of each run.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "server/metrics.h"
#include "server/txn/saga.h"
#include "storage/rocksdb_store.h"
#include "tests/bench/sample_records.h"
#include "tests/bench/write_window.h"

namespace dtmd::bench {
namespace {

using storage::BranchRecord;
using storage::Durability;
using storage::RocksDBStore;
using storage::TransRecord;
using txn::CallState;

constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr char kGid[] = "bench-0000000000000001";  // 22 characters.
constexpr int kStoreWindow = 1024;                 // writes in flight.

using Saga = NewTransaction;

// A submitted sequential saga of `steps` steps, as dtmd stores it, whose
// first `succeeded` actions have succeeded.
Saga MakeSaga(int steps, int succeeded) {
  Saga saga = SampleSaga(kGid, steps, kNowMs);
  MarkActionsSucceeded(&saga, succeeded, kNowMs);
  return saga;
}

void BM_ParseSaga(benchmark::State& state) {
  const std::string steps = SampleStepsJson(2);
  const std::vector<std::string> payloads(2, std::string(64, 'p'));
  for (auto _ : state) {
    auto def = txn::ParseSaga(kGid, steps, payloads, "", txn::SagaLimits());
    benchmark::DoNotOptimize(def);
  }
}
BENCHMARK(BM_ParseSaga);

// Plans `saga`, checking once that the next call is `expected_call`.
void PlanLoop(benchmark::State& state, const Saga& saga, int expected_call) {
  const std::vector<CallState> idle(saga.branches.size(), CallState::kIdle);
  txn::SagaDecision first =
      txn::PlanSaga(saga.trans, saga.branches, idle, kNowMs);
  if (first.calls != std::vector<int>{expected_call}) {
    state.SkipWithError("unexpected plan");
    return;
  }
  for (auto _ : state) {
    txn::SagaDecision decision =
        txn::PlanSaga(saga.trans, saga.branches, idle, kNowMs);
    benchmark::DoNotOptimize(decision);
  }
}

void BM_PlanSagaStep(benchmark::State& state) {
  PlanLoop(state, MakeSaga(2, 1), 3);
}
BENCHMARK(BM_PlanSagaStep);

void BM_PlanSaga_1000Steps(benchmark::State& state) {
  PlanLoop(state, MakeSaga(1000, 500), 2 * 500 + 1);
}
BENCHMARK(BM_PlanSaga_1000Steps);

// The success of step 2's action; resetting the branch (a string assign) is
// included so that every iteration applies a fresh answer.
void BM_ApplySagaResult(benchmark::State& state) {
  Saga saga = MakeSaga(2, 1);
  BranchRecord& branch = saga.branches[3];
  const txn::RetryPolicy policy;
  for (auto _ : state) {
    branch.set_status(txn::kBranchPrepared);
    bool deferred = txn::ApplySagaResult(
        &saga.trans, &branch, txn::BranchOutcome::kSuccess, "", kNowMs, policy);
    benchmark::DoNotOptimize(deferred);
    benchmark::DoNotOptimize(saga.trans);
  }
}
BENCHMARK(BM_ApplySagaResult);

void BM_TransRecordEncode(benchmark::State& state) {
  const TransRecord trans = MakeSaga(2, 1).trans;
  std::string out;
  for (auto _ : state) {
    trans.SerializeToString(&out);
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_TransRecordEncode);

void BM_TransRecordDecode(benchmark::State& state) {
  const std::string encoded = MakeSaga(2, 1).trans.SerializeAsString();
  TransRecord trans;
  for (auto _ : state) {
    bool ok = trans.ParseFromString(encoded);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(trans);
  }
}
BENCHMARK(BM_TransRecordDecode);

void BM_BranchRecordEncode(benchmark::State& state) {
  BranchRecord branch = MakeSaga(2, 1).branches[1];  // succeeded action.
  branch.set_gid(kGid);
  std::string out;
  for (auto _ : state) {
    branch.SerializeToString(&out);
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_BranchRecordEncode);

// A RocksDBStore in a fresh temporary directory, removed with it.
class TempStore {
 public:
  TempStore() {
    static std::atomic<int> next{0};
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("dtmd_micro_bench-", getpid(), "-", next++);
    storage::RocksDBStoreOptions options;
    options.path = dir_.string();
    absl::StatusOr<std::unique_ptr<RocksDBStore>> store =
        RocksDBStore::Open(options);
    if (store.ok()) {
      store_ = *std::move(store);
    } else {
      status_ = store.status();
    }
  }
  ~TempStore() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const absl::Status& status() const { return status_; }
  RocksDBStore* get() const { return store_.get(); }

 private:
  std::filesystem::path dir_;
  absl::Status status_;
  std::unique_ptr<RocksDBStore> store_;
};

std::string StoreGid(int64_t i) {
  return absl::StrCat("bench-", absl::Dec(i, absl::kZeroPad16));
}

// Reports the run's rate, or the first write error.
void FinishStoreRun(benchmark::State& state, WriteWindow& window) {
  if (absl::Status error = window.error(); !error.ok()) {
    state.SkipWithError(error.ToString().c_str());
    return;
  }
  state.counters["writes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// CreateTransaction of a 2-step saga (1 trans + 4 branch records).
void BM_StoreCreateNoSync(benchmark::State& state) {
  TempStore store;
  if (!store.status().ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  const Saga sample = MakeSaga(2, 0);
  WriteWindow window(kStoreWindow);
  int64_t issued = 0;
  for (auto _ : state) {
    window.Acquire();
    Saga saga = sample;
    saga.trans.set_gid(StoreGid(issued));
    store.get()->CreateTransaction(
        std::move(saga.trans), std::move(saga.branches), Durability::kNoSync,
        [&window](absl::StatusOr<storage::CreateResult> result) {
          window.Release(result.ok() && !result->created
                             ? absl::InternalError("gid existed")
                             : result.status());
        });
    // Drain inside the timed loop, so the run pays for every write.
    if (++issued == state.max_iterations) store.get()->Flush();
  }
  store.get()->Flush();  // Every callback has returned before `window` goes.
  FinishStoreRun(state, window);
}
BENCHMARK(BM_StoreCreateNoSync)->UseRealTime();

// UpdateTransaction recording a branch result (trans + 1 branch record, due
// index moved), round-robin over kTransactions stored transactions.
void BM_StoreUpdateNoSync(benchmark::State& state) {
  constexpr int kTransactions = 4096;
  TempStore store;
  if (!store.status().ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  const Saga sample = MakeSaga(2, 0);
  WriteWindow window(kStoreWindow);
  for (int i = 0; i < kTransactions; ++i) {
    window.Acquire();
    Saga saga = sample;
    saga.trans.set_gid(StoreGid(i));
    store.get()->CreateTransaction(
        std::move(saga.trans), std::move(saga.branches), Durability::kNoSync,
        [&window](absl::StatusOr<storage::CreateResult> result) {
          window.Release(result.status());
        });
  }
  store.get()->Flush();

  BranchRecord result_branch = sample.branches[1];
  result_branch.set_status(txn::kBranchSucceed);
  result_branch.set_finish_time_ms(kNowMs + 5);
  result_branch.set_call_count(1);
  int64_t issued = 0;
  for (auto _ : state) {
    window.Acquire();
    TransRecord trans = sample.trans;
    trans.set_gid(StoreGid(issued % kTransactions));
    trans.set_update_time_ms(kNowMs + issued);
    trans.set_next_cron_time_ms(kNowMs + 10'000 + issued);
    store.get()->UpdateTransaction(
        std::move(trans), storage::kStatusSubmitted, {result_branch},
        Durability::kNoSync,
        [&window](absl::Status status) { window.Release(status); });
    if (++issued == state.max_iterations) store.get()->Flush();
  }
  store.get()->Flush();
  FinishStoreRun(state, window);
}
BENCHMARK(BM_StoreUpdateNoSync)->UseRealTime();

// What recording a branch call costs on the runner's hot path (a counter
// and a histogram, both cached), alone and from two threads on the same
// series.
void BM_MetricsBranchCalled(benchmark::State& state) {
  static Metrics* const metrics = new Metrics();
  for (auto _ : state) {
    metrics->BranchCalled("saga", "action", txn::BranchOutcome::kSuccess,
                          0.002);
  }
}
BENCHMARK(BM_MetricsBranchCalled)->Threads(1)->Threads(2);

// A finished transaction: a counter and a histogram picked by index.
void BM_MetricsTransactionFinished(benchmark::State& state) {
  static Metrics* const metrics = new Metrics();
  for (auto _ : state) metrics->TransactionFinished("saga", true, 0.5);
}
BENCHMARK(BM_MetricsTransactionFinished);

}  // namespace
}  // namespace dtmd::bench
