#include "server/metrics.h"

#include <chrono>
#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"

namespace dtmd {
namespace {

using prometheus::Counter;
using prometheus::Histogram;

constexpr const char* kTransTypeNames[Metrics::kTransTypes] = {
    "saga", "msg", "tcc", "xa", "workflow"};
constexpr const char* kOpNames[Metrics::kOps] = {
    "action", "compensate", "confirm", "cancel",
    "commit", "rollback",   "msg",     "other"};
constexpr const char* kCodeNames[Metrics::kGrpcCodes] = {"OK",
                                                         "CANCELLED",
                                                         "UNKNOWN",
                                                         "INVALID_ARGUMENT",
                                                         "DEADLINE_EXCEEDED",
                                                         "NOT_FOUND",
                                                         "ALREADY_EXISTS",
                                                         "PERMISSION_DENIED",
                                                         "RESOURCE_EXHAUSTED",
                                                         "FAILED_PRECONDITION",
                                                         "ABORTED",
                                                         "OUT_OF_RANGE",
                                                         "UNIMPLEMENTED",
                                                         "INTERNAL",
                                                         "UNAVAILABLE",
                                                         "DATA_LOSS",
                                                         "UNAUTHENTICATED"};

// Seconds. Requests and branch calls: from half a millisecond (a refusal)
// to tens of seconds (a WaitResult, a slow branch).
const Histogram::BucketBoundaries& CallBuckets() {
  static const auto* const buckets = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,   1,      2.5,   5,    10,    30};
  return *buckets;
}
// A transaction's life: milliseconds to a day of retries.
const Histogram::BucketBoundaries& TransactionBuckets() {
  static const auto* const buckets = new Histogram::BucketBoundaries{
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,     2.5,  5,
      10,   30,    60,   300, 900,  3600, 21600, 86400};
  return *buckets;
}
// Store writes and fsyncs: tens of microseconds to a second.
const Histogram::BucketBoundaries& StoreBuckets() {
  static const auto* const buckets = new Histogram::BucketBoundaries{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
      0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1};
  return *buckets;
}

// The series in `slot`, made by `make` on first use. Family::Add returns
// the existing series for a label set, so racing first uses agree.
template <typename T, typename Make>
T* Cached(std::atomic<T*>& slot, Make make) {
  T* series = slot.load(std::memory_order_acquire);
  if (series == nullptr) {
    series = &make();
    slot.store(series, std::memory_order_release);
  }
  return series;
}

}  // namespace

// Serves the registry, after running the sampler.
class Metrics::Collector : public prometheus::Collectable {
 public:
  explicit Collector(Metrics* metrics) : metrics_(metrics) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    {
      absl::MutexLock lock(&metrics_->sampler_mu_);
      if (metrics_->sampler_) metrics_->sampler_();
    }
    return metrics_->registry_->Collect();
  }

 private:
  Metrics* const metrics_;
};

class Metrics::RequestInterceptor : public grpc::experimental::Interceptor {
 public:
  RequestInterceptor(Metrics* metrics, MethodSeries* method)
      : metrics_(metrics),
        method_(method),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->RequestDone(
          method_, static_cast<int>(methods->GetSendStatus().error_code()),
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        start_)
              .count());
    }
    methods->Proceed();
  }

 private:
  Metrics* const metrics_;
  MethodSeries* const method_;
  const std::chrono::steady_clock::time_point start_;
};

class Metrics::RequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RequestInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Read-only while serving: no lock.
    auto it = metrics_->methods_.find(info->method());
    if (it == metrics_->methods_.end()) return nullptr;  // health, reflection
    return new RequestInterceptor(metrics_, it->second.get());
  }

 private:
  Metrics* const metrics_;
};

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      collector_(std::make_shared<Collector>(this)) {
  prometheus::Registry& r = *registry_;
  prometheus::BuildGauge()
      .Name("dtm_server_info")
      .Help("The information of this dtm server (dtmd): always 1")
      .Register(r)
      .Add({{"version", DTMD_VERSION}, {"grpc_version", grpc::Version()}})
      .Set(1);
  server_process_ = &prometheus::BuildCounter()
                         .Name("dtm_server_process_total")
                         .Help("All request received by dtm")
                         .Register(r);
  server_duration_ = &prometheus::BuildHistogram()
                          .Name("dtm_server_response_duration")
                          .Help("The request durations of a dtm server api")
                          .Register(r);

  auto& started = prometheus::BuildCounter()
                      .Name("dtmd_transactions_started_total")
                      .Help("Transactions created (stored), by trans type")
                      .Register(r);
  auto& finished = prometheus::BuildCounter()
                       .Name("dtm_transaction_process_total")
                       .Help(
                           "All transactions processed by dtm: finished "
                           "ones, status ok (succeed) or fail (failed)")
                       .Register(r);
  auto& handled = prometheus::BuildHistogram()
                      .Name("dtm_transaction_handled_duration")
                      .Help(
                          "Histogram of handling latency of the transaction "
                          "that handled by the server: creation to final "
                          "status, seconds")
                      .Register(r);
  for (int t = 0; t < kTransTypes; ++t) {
    trans_started_[t] = &started.Add({{"model", kTransTypeNames[t]}});
    trans_finished_[t][0] =
        &finished.Add({{"model", kTransTypeNames[t]}, {"status", "ok"}});
    trans_finished_[t][1] =
        &finished.Add({{"model", kTransTypeNames[t]}, {"status", "fail"}});
    trans_duration_[t] =
        &handled.Add({{"model", kTransTypeNames[t]}}, TransactionBuckets());
  }

  branch_process_ = &prometheus::BuildCounter()
                         .Name("dtm_branch_process_total")
                         .Help(
                             "All branches processed by dtm: branch calls "
                             "answered, by outcome")
                         .Register(r);
  branch_duration_ = &prometheus::BuildHistogram()
                          .Name("dtmd_branch_call_duration_seconds")
                          .Help(
                              "Branch call latency, call to answer, by op "
                              "and outcome")
                          .Register(r);

  active_transactions_ =
      &AddGauge("dtmd_active_transactions",
                "Transactions being driven now (runners in memory)");
  due_transactions_ = &AddGauge(
      "dtmd_due_transactions",
      absl::StrCat("Unfinished transactions whose next retry time has passed "
                   "(counted up to ",
                   kMaxDueCounted, ")"));

  auto& store_duration =
      prometheus::BuildHistogram()
          .Name("dtmd_store_write_duration_seconds")
          .Help(
              "Store writes: one group-commit batch written (stage write) "
              "or one WAL fsync (stage sync), seconds")
          .Register(r);
  store_write_duration_ =
      &store_duration.Add({{"stage", "write"}}, StoreBuckets());
  store_sync_duration_ =
      &store_duration.Add({{"stage", "sync"}}, StoreBuckets());
  store_write_bytes_ =
      &AddCounter("dtmd_store_write_bytes_total",
                  "Bytes of RocksDB write batches the store wrote");
  store_write_ops_ = &AddCounter(
      "dtmd_store_write_ops_total",
      "Store writes (creates, updates, ...) grouped into those batches");
  retry_alerts_ = &AddCounter(
      "dtmd_branch_retry_alerts_total",
      "Retry alerts raised: a branch retried --alert_retry_limit times, "
      "then at each doubling");
  retention_deleted_ =
      &AddCounter("dtmd_retention_deleted_total",
                  "Finished transactions deleted by retention");
}

Metrics::~Metrics() {
  exposer_.reset();  // No scrape runs after this.
}

absl::Status Metrics::Serve(const std::string& host, int port) {
  // Debian's civetweb (prometheus-cpp's HTTP server) is built without IPv6:
  // the IPv6 any and loopback addresses map to their IPv4 counterparts.
  std::string ipv4_host = host;
  if (host == "::") {
    ipv4_host = "0.0.0.0";
  } else if (host == "::1") {
    ipv4_host = "127.0.0.1";
  } else if (host.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: the metrics endpoint listens on IPv4 only; --listen_address=",
        host,
        " has no IPv4 counterpart (use ::, ::1, an IPv4 address, or "
        "--metrics_port=0)"));
  }
  const std::string address = absl::StrCat(ipv4_host, ":", port);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "metrics: cannot listen on ", address, " (port in use?): ", e.what()));
  }
  exposer_->RegisterCollectable(collector_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? port : ports.front();
  return absl::OkStatus();
}

int Metrics::port() const { return port_; }

void Metrics::SetSampler(std::function<void()> sampler) {
  absl::MutexLock lock(&sampler_mu_);
  sampler_ = std::move(sampler);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::NewRequestInterceptorFactory(
    const std::vector<std::string>& services) {
  const google::protobuf::DescriptorPool* pool =
      google::protobuf::DescriptorPool::generated_pool();
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* service =
        pool->FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* method = service->method(i);
      auto series = std::make_unique<MethodSeries>();
      series->api = absl::AsciiStrToLower(method->name());
      methods_[absl::StrCat("/", service->full_name(), "/", method->name())] =
          std::move(series);
    }
  }
  return std::make_unique<RequestInterceptorFactory>(this);
}

void Metrics::RequestDone(MethodSeries* method, int code, double seconds) {
  if (code < 0 || code >= kGrpcCodes) code = 2;  // UNKNOWN
  Cached(method->calls[code], [&]() -> Counter& {
    return server_process_->Add({{"type", "grpc"},
                                 {"api", method->api},
                                 {"status", code == 0 ? "ok" : "fail"},
                                 {"code", kCodeNames[code]}});
  })->Increment();
  Cached(method->duration, [&]() -> Histogram& {
    return server_duration_->Add({{"type", "grpc"}, {"api", method->api}},
                                 CallBuckets());
  })->Observe(seconds);
}

void Metrics::HttpRequestDone(absl::string_view api, int http_code,
                              double seconds) {
  const std::string name = absl::AsciiStrToLower(api);
  Counter* counter;
  Histogram* duration;
  {
    absl::MutexLock lock(&http_mu_);
    Counter*& c = http_calls_[{name, http_code}];
    if (c == nullptr) {
      c = &server_process_->Add({{"type", "http"},
                                 {"api", name},
                                 {"status", http_code == 200 ? "ok" : "fail"},
                                 {"code", absl::StrCat(http_code)}});
    }
    counter = c;
    Histogram*& h = http_duration_[name];
    if (h == nullptr) {
      h = &server_duration_->Add({{"type", "http"}, {"api", name}},
                                 CallBuckets());
    }
    duration = h;
  }
  counter->Increment();
  duration->Observe(seconds);
}

int Metrics::TransTypeIndex(absl::string_view trans_type) {
  for (int i = 0; i < kTransTypes; ++i) {
    if (trans_type == kTransTypeNames[i]) return i;
  }
  return -1;
}

int Metrics::OpIndex(absl::string_view op) {
  for (int i = 0; i < kOps - 1; ++i) {
    if (op == kOpNames[i]) return i;
  }
  return kOps - 1;
}

void Metrics::TransactionStarted(absl::string_view trans_type) {
  const int t = TransTypeIndex(trans_type);
  if (t >= 0) trans_started_[t]->Increment();
}

void Metrics::TransactionFinished(absl::string_view trans_type, bool succeeded,
                                  double seconds) {
  const int t = TransTypeIndex(trans_type);
  if (t < 0) return;
  trans_finished_[t][succeeded ? 0 : 1]->Increment();
  trans_duration_[t]->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::BranchCalled(absl::string_view trans_type, absl::string_view op,
                           txn::BranchOutcome outcome, double seconds) {
  const int t = TransTypeIndex(trans_type);
  if (t < 0) return;
  const int o = OpIndex(op);
  const int r = static_cast<int>(outcome);
  Cached(branch_calls_[(t * kOps + o) * kOutcomes + r], [&]() -> Counter& {
    return branch_process_->Add(
        {{"model", kTransTypeNames[t]},
         {"branchtype", kOpNames[o]},
         {"status", outcome == txn::BranchOutcome::kSuccess ? "ok" : "fail"},
         {"outcome", std::string(txn::OutcomeName(outcome))}});
  })->Increment();
  Cached(branch_latency_[o * kOutcomes + r], [&]() -> Histogram& {
    return branch_duration_->Add(
        {{"branchtype", kOpNames[o]},
         {"outcome", std::string(txn::OutcomeName(outcome))}},
        CallBuckets());
  })->Observe(seconds);
}

void Metrics::OnBatchWritten(int64_t ops, int64_t bytes, double seconds) {
  store_write_duration_->Observe(seconds);
  store_write_bytes_->Increment(static_cast<double>(bytes));
  store_write_ops_->Increment(static_cast<double>(ops));
}

void Metrics::OnWalSynced(double seconds) {
  store_sync_duration_->Observe(seconds);
}

prometheus::Counter& Metrics::AddCounter(const std::string& name,
                                         const std::string& help,
                                         const prometheus::Labels& labels) {
  return prometheus::BuildCounter()
      .Name(name)
      .Help(help)
      .Register(*registry_)
      .Add(labels);
}

prometheus::Gauge& Metrics::AddGauge(const std::string& name,
                                     const std::string& help,
                                     const prometheus::Labels& labels) {
  return prometheus::BuildGauge()
      .Name(name)
      .Help(help)
      .Register(*registry_)
      .Add(labels);
}

}  // namespace dtmd
