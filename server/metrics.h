// Metrics: dtmd's Prometheus metrics (README, "Metrics"), served as text on
// http://<listen_address>:<metrics_port>/metrics by prometheus-cpp. One
// object per process, owned by Server; the gRPC server (an interceptor), the
// engine, the runners and the store's writer record into it. With metrics
// disabled (--metrics_port=0) there is no object: every holder keeps a null
// Metrics* and records nothing, at no cost.
//
// Metrics DTM also has keep DTM's names and labels (dtm_server_process_total,
// dtm_transaction_process_total, ...), so that dashboards made for DTM keep
// working; the others are named dtmd_*.
//
// Recording is thread-safe and takes no shared lock once a label set has
// been used: prometheus-cpp's Family::Add takes the family's mutex, so every
// series is looked up once and its pointer kept in a fixed slot indexed by
// small enums (trans type, op, outcome, gRPC code, method), never in a map
// under a lock. Counters are atomics; each histogram series has its own
// short lock (prometheus-cpp's).
//
// Adding a metric: declare a member (`prometheus::Counter* foo_;`), create
// it in the constructor with AddCounter/AddGauge (or a family for labelled
// series, with pointers cached as the ones below), and add a recording
// method (`void Foo() { foo_->Increment(); }`). Callers hold a Metrics* that
// may be null: `if (metrics != nullptr) metrics->Foo();`. List the metric in
// README's table: a test checks that every name listed there is served.
#ifndef DTMD_SERVER_METRICS_H_
#define DTMD_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/txn/outcome.h"
#include "storage/rocksdb_store.h"

namespace prometheus {
class Exposer;
}

namespace dtmd {

class Metrics final : public storage::WriteObserver {
 public:
  // At most this many due transactions are counted per scrape.
  static constexpr int64_t kMaxDueCounted = 10000;

  // Creates every metric; serves nothing until Serve().
  Metrics();
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Serves /metrics on host:port over HTTP (host as --listen_address). IPv4
  // only: "::" and "::1" stand for 0.0.0.0 and 127.0.0.1, another IPv6
  // address is INVALID_ARGUMENT. UNAVAILABLE if it cannot listen there.
  absl::Status Serve(const std::string& host, int port);
  // The port served; 0 before Serve().
  int port() const;

  // Runs at each scrape, before the metrics are read: sets the gauges that
  // are sampled rather than kept (SetActiveTransactions, ...). An empty
  // function removes the sampler, waiting for a scrape that runs it.
  void SetSampler(std::function<void()> sampler);

  // Counts the calls of every method of the services in `services` (full
  // names, e.g. "dtmgimp.Dtm") by method and status code, with their
  // latency. Install on the gRPC server builder; call once, before the
  // server starts (the method table is read without a lock afterwards).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewRequestInterceptorFactory(const std::vector<std::string>& services);

  // Recorders. A `trans_type` outside the registered modes is not counted
  // (the engine stores no such transaction); an `op` outside the known set
  // is counted as "other".
  // A transaction was stored (created).
  void TransactionStarted(absl::string_view trans_type);
  // A transaction's final status (succeed or failed) was stored; `seconds`
  // from its creation.
  void TransactionFinished(absl::string_view trans_type, bool succeeded,
                           double seconds);
  // A branch (or msg query) call answered with `outcome` after `seconds`.
  void BranchCalled(absl::string_view trans_type, absl::string_view op,
                    txn::BranchOutcome outcome, double seconds);
  // An HTTP API request (server/http_api.h) was answered with `http_code`
  // after `seconds`; `api` is its route in lower case ("submit", ...).
  // Counted in the same series as gRPC requests, with type="http".
  void HttpRequestDone(absl::string_view api, int http_code, double seconds);

  // A branch reached a retry alert point (--alert_retry_limit).
  void RetryAlert() { retry_alerts_->Increment(); }
  // Retention deleted `count` more finished transactions (sampled).
  void RetentionDeleted(int64_t count) {
    if (count > 0) retention_deleted_->Increment(static_cast<double>(count));
  }
  // Sampled gauges (see SetSampler).
  void SetActiveTransactions(int64_t count) {
    active_transactions_->Set(static_cast<double>(count));
  }
  void SetDueTransactions(int64_t count) {
    due_transactions_->Set(static_cast<double>(count));
  }
  // storage::WriteObserver.
  void OnBatchWritten(int64_t ops, int64_t bytes, double seconds) override;
  void OnWalSynced(double seconds) override;

  // For new metrics, created once at setup (Family::Add locks: never on a
  // hot path). The references stay valid as long as this object.
  prometheus::Counter& AddCounter(const std::string& name,
                                  const std::string& help,
                                  const prometheus::Labels& labels = {});
  prometheus::Gauge& AddGauge(const std::string& name, const std::string& help,
                              const prometheus::Labels& labels = {});

  // Label value sets (indexes into the slot arrays).
  static constexpr int kTransTypes = 5;  // saga msg tcc xa workflow
  static constexpr int kOps = 8;  // action compensate confirm cancel commit
                                  // rollback msg other
  static constexpr int kOutcomes = 4;
  static constexpr int kGrpcCodes = 17;
  // -1 for a trans type outside the set.
  static int TransTypeIndex(absl::string_view trans_type);
  static int OpIndex(absl::string_view op);

 private:
  class Collector;
  class RequestInterceptor;
  class RequestInterceptorFactory;

  // The series of one gRPC method, made on first use.
  struct MethodSeries {
    std::string api;  // the method name in lower case, as DTM labels it.
    std::array<std::atomic<prometheus::Counter*>, kGrpcCodes> calls{};
    std::atomic<prometheus::Histogram*> duration{nullptr};
  };
  // Called by the interceptor.
  void RequestDone(MethodSeries* method, int code, double seconds);

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;

  absl::Mutex sampler_mu_;
  std::function<void()> sampler_ ABSL_GUARDED_BY(sampler_mu_);

  prometheus::Counter* retry_alerts_ = nullptr;
  prometheus::Counter* retention_deleted_ = nullptr;
  prometheus::Family<prometheus::Counter>* server_process_;
  prometheus::Family<prometheus::Histogram>* server_duration_;
  // Method name ("/pkg.Service/Method") -> its series; filled by
  // NewRequestInterceptorFactory before serving, read-only afterwards.
  absl::flat_hash_map<std::string, std::unique_ptr<MethodSeries>> methods_;
  // The HTTP API's series, made on first use: (api, code) and api.
  absl::Mutex http_mu_;
  absl::flat_hash_map<std::pair<std::string, int>, prometheus::Counter*>
      http_calls_ ABSL_GUARDED_BY(http_mu_);
  absl::flat_hash_map<std::string, prometheus::Histogram*> http_duration_
      ABSL_GUARDED_BY(http_mu_);

  std::array<prometheus::Counter*, kTransTypes> trans_started_{};
  // [type][0: ok (succeed), 1: fail (failed)]
  std::array<std::array<prometheus::Counter*, 2>, kTransTypes>
      trans_finished_{};
  std::array<prometheus::Histogram*, kTransTypes> trans_duration_{};

  prometheus::Family<prometheus::Counter>* branch_process_;
  prometheus::Family<prometheus::Histogram>* branch_duration_;
  std::array<std::atomic<prometheus::Counter*>, kTransTypes * kOps * kOutcomes>
      branch_calls_{};
  std::array<std::atomic<prometheus::Histogram*>, kOps * kOutcomes>
      branch_latency_{};

  prometheus::Gauge* active_transactions_;
  prometheus::Gauge* due_transactions_;

  prometheus::Histogram* store_write_duration_;
  prometheus::Histogram* store_sync_duration_;
  prometheus::Counter* store_write_bytes_;
  prometheus::Counter* store_write_ops_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_METRICS_H_
