#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "storage/fault_injection_fs.h"
#include "storage/postgres_store.h"
#include "storage/rocksdb_store.h"

namespace dtmd {
namespace {

// host:port, with an IPv6 host in brackets.
std::string Address(const std::string& host, int port) {
  return absl::StrCat(
      host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host,
      ":", port);
}

// What an operator must know about how dtmd is exposed.
void LogSecurity(const Config& config, const TokenAuthenticator& auth,
                 int health_port) {
  const bool tls = !config.tls_cert_file.empty();
  LOG(INFO) << "gRPC transport: "
            << (!tls ? "plaintext"
                : config.tls_client_ca_file.empty()
                    ? "TLS"
                    : "TLS, client certificates required");
  if (health_port > 0) {
    LOG(INFO) << "plaintext health checks on " << config.listen_address << ":"
              << health_port << " (Dtm and Admin refuse calls there)";
  }
  if (!auth.enabled()) {
    LOG(WARNING) << "no --auth_token_file: the Dtm and Admin services accept "
                    "every caller (no authentication)";
    return;
  }
  LOG(INFO) << "bearer tokens required on the Dtm and Admin services ("
            << auth.token_count() << " loaded from " << auth.path()
            << "; SIGHUP reloads)";
  if (!tls) {
    LOG(WARNING) << "--auth_token_file without --tls_cert_file: tokens "
                    "travel in plaintext";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config) {
  std::unique_ptr<Server> server(new Server());
  if (config.metrics_port > 0) {
    server->metrics_ = std::make_unique<Metrics>();
    if (absl::Status s =
            server->metrics_->Serve(config.listen_address, config.metrics_port);
        !s.ok()) {
      return s;
    }
  }
  storage::RocksDBStoreOptions store_options;
  store_options.observer = server->metrics_.get();
  store_options.path = config.data_dir;
  store_options.accept_data_loss = config.accept_data_loss;
  store_options.max_queued_writes = config.store_max_queued_writes;
  store_options.max_queued_bytes = config.store_max_queued_bytes;
  if (config.testing_fail_wal_sync_after >= 0) {
    LOG(WARNING) << "--testing_fail_wal_sync_after="
                 << config.testing_fail_wal_sync_after
                 << ": WAL syncs will fail (for tests only)";
    auto fs = std::make_shared<storage::FaultInjectionFileSystem>();
    fs->FailWalSyncAfter(config.testing_fail_wal_sync_after);
    store_options.file_system = std::move(fs);
  }
  // Security files are read before the store is opened: a wrong path stops
  // start-up with the flag named, before anything else happens.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentialsFromConfig(config);
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<BranchTls> branch_tls = BranchTls::FromConfig(config);
  if (!branch_tls.ok()) return branch_tls.status();
  // https:// branches use the same files (without --branch_tls too).
  for (const auto& [path, flag] :
       {std::pair{config.branch_tls_ca_file, "branch_tls_ca_file"},
        std::pair{config.branch_tls_cert_file, "branch_tls_cert_file"},
        std::pair{config.branch_tls_key_file, "branch_tls_key_file"}}) {
    if (path.empty()) continue;
    if (absl::StatusOr<std::string> pem = ReadSmallFile(path, flag);
        !pem.ok()) {
      return pem.status();
    }
  }
  if (config.auth_token_file.empty()) {
    server->auth_ = std::make_unique<TokenAuthenticator>();
  } else {
    absl::StatusOr<std::unique_ptr<TokenAuthenticator>> auth =
        TokenAuthenticator::FromFile(config.auth_token_file);
    if (!auth.ok()) return auth.status();
    server->auth_ = *std::move(auth);
  }
  if (config.store_driver == "postgres") {
    storage::PostgresStoreOptions pg;
    pg.dsn = config.postgres_dsn;
    pg.replica_id = config.replica_id;
    pg.lease_ms = config.lease_timeout_s * 1000;
    pg.max_queued_writes = config.store_max_queued_writes;
    pg.max_queued_bytes = config.store_max_queued_bytes;
    pg.observer = server->metrics_.get();
    // A replica whose database does not answer for half a lease cannot keep
    // its leases either: it answers UNAVAILABLE rather than hanging.
    pg.answer_timeout = absl::Milliseconds(
        std::clamp<int64_t>(config.lease_timeout_s * 500, 2000, 10000));
    if (config.lease_timeout_s <= config.request_timeout_s) {
      LOG(WARNING) << "--lease_timeout (" << config.lease_timeout_s
                   << " s) should exceed --request_timeout ("
                   << config.request_timeout_s
                   << " s): a replica that pauses during a branch call can "
                      "lose its lease while the call still runs";
    }
    absl::StatusOr<std::unique_ptr<storage::PostgresStore>> store =
        storage::PostgresStore::Open(std::move(pg));
    if (!store.ok()) return store.status();
    LOG(INFO) << "store: PostgreSQL, replica " << (*store)->replica_id()
              << ", leases of " << config.lease_timeout_s << " s";
    server->store_ = *std::move(store);
  } else {
    absl::StatusOr<std::unique_ptr<storage::RocksDBStore>> store =
        storage::RocksDBStore::Open(store_options);
    if (!store.ok()) return store.status();
    server->store_ = *std::move(store);
  }
  ChannelCache::Options channels;
  channels.max_channels = config.max_branch_channels;
  channels.idle_ms = config.branch_channel_idle_s * 1000;
  server->grpc_invoker_ = std::make_unique<GrpcBranchInvoker>(
      channels, SystemClock::Get(), *std::move(branch_tls));
  HttpInvokerOptions http;
  http.max_host_connections = config.max_http_host_connections;
  http.max_connections = config.max_http_connections;
  http.ca_file = config.branch_tls_ca_file;
  http.cert_file = config.branch_tls_cert_file;
  http.key_file = config.branch_tls_key_file;
  absl::StatusOr<std::unique_ptr<HttpBranchInvoker>> http_invoker =
      HttpBranchInvoker::Create(std::move(http));
  if (!http_invoker.ok()) return http_invoker.status();
  server->http_invoker_ = *std::move(http_invoker);
  server->invoker_ = std::make_unique<RoutingBranchInvoker>(
      server->grpc_invoker_.get(), server->http_invoker_.get());
  server->engine_ = std::make_unique<Engine>(
      config, server->store_.get(), server->invoker_.get(), SystemClock::Get(),
      server->metrics_.get());
  server->dtm_service_ =
      std::make_unique<DtmService>(server->engine_.get(), server->auth_.get());
  server->admin_service_ = std::make_unique<AdminService>(server->engine_.get(),
                                                          server->auth_.get());

  grpc::EnableDefaultHealthCheckService(true);
  // Links the Health descriptor in, so reflection can describe the service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = Address(config.listen_address, config.grpc_port);
  // No SO_REUSEPORT: a second dtmd on a taken port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, *credentials, &server->port_);
  std::string health_address;
  if (!config.tls_cert_file.empty() && config.health_port >= 0) {
    // Kubernetes' gRPC probes speak plaintext only. Every service is on
    // this port too, but Dtm and Admin refuse calls that are not over TLS.
    health_address = Address(config.listen_address, config.health_port);
    builder.AddListeningPort(health_address, grpc::InsecureServerCredentials(),
                             &server->health_port_);
    server->auth_->RequireTls();
  }
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<int64_t>(config.max_request_bytes + 4096, INT32_MAX)));
  // Bounds the memory requests in flight may take; over it gRPC refuses
  // new calls with RESOURCE_EXHAUSTED instead of growing without limit.
  grpc::ResourceQuota quota("dtmd");
  quota.Resize(static_cast<size_t>(config.grpc_memory_mib) << 20);
  builder.SetResourceQuota(quota);
  if (server->metrics_) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(server->metrics_->NewRequestInterceptorFactory(
        {dtmgimp::Dtm::service_full_name(),
         dtmd::admin::v1::Admin::service_full_name()}));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.RegisterService(server->dtm_service_.get());
  builder.RegisterService(server->admin_service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (port in use?)"));
  }
  if (!health_address.empty() && server->health_port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "--health_port: cannot listen on ", health_address, " (port in use?)"));
  }
  // Health says NOT_SERVING until recovery has loaded the due index
  // (WatchStore turns it to SERVING), so that readiness probes wait for it.
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  server->engine_->Start();
  if (config.retention_s > 0) {
    RetentionOptions retention;
    retention.retention_ms = config.retention_s * 1000;
    retention.batch_size = config.retention_batch_size;
    retention.batch_pause_ms = config.retention_batch_pause_ms;
    retention.compact_interval_ms = config.retention_compact_interval_s * 1000;
    Engine* engine = server->engine_.get();
    server->retention_ = std::make_unique<Retention>(
        retention, server->store_.get(), SystemClock::Get(),
        [engine](std::vector<storage::FinishedTrans>* finished) {
          engine->DropBusy(finished);
        });
    server->retention_->Start();
    LOG(INFO) << "retention: finished transactions are deleted "
              << config.retention_s << " s after they finished";
  } else {
    LOG(INFO) << "retention: off (--retention=0), finished transactions "
                 "are kept forever";
  }
  if (server->metrics_) {
    server->metrics_->SetSampler([s = server.get()] { s->SampleMetrics(); });
  }
  if (config.http_port != 0 && !config.tls_cert_file.empty()) {
    LOG(WARNING) << "the HTTP API is off: it has no TLS and the gRPC server "
                    "uses TLS (--http_port=0 silences this)";
  } else if (config.http_port != 0) {
    absl::StatusOr<std::unique_ptr<HttpApi>> http = HttpApi::Start(
        server->engine_.get(), server->auth_.get(), server->metrics_.get(),
        config.listen_address, config.http_port);
    if (!http.ok()) return http.status();
    server->http_api_ = *std::move(http);
    LOG(INFO) << "dtmd serving DTM's HTTP API on http://"
              << config.listen_address << ":" << server->http_api_->port()
              << "/api/dtmsvr/";
  }
  server->store_watch_ = std::thread([s = server.get()] { s->WatchStore(); });
  LOG(INFO) << "dtmd " << DTMD_VERSION << " serving gRPC on "
            << config.listen_address << ":" << server->port_ << ", "
            << (config.store_driver == "postgres"
                    ? "data in PostgreSQL"
                    : absl::StrCat("data in ", config.data_dir));
  LogSecurity(config, *server->auth_, server->health_port_);
  if (server->metrics_) {
    LOG(INFO) << "dtmd serving metrics on http://" << config.listen_address
              << ":" << server->metrics_->port() << "/metrics";
  }
  return server;
}

void Server::ReloadTokens() {
  if (!auth_->enabled()) {
    LOG(INFO) << "SIGHUP: no --auth_token_file, nothing to reload";
    return;
  }
  if (absl::Status s = auth_->Reload(); !s.ok()) {
    LOG(ERROR) << "SIGHUP: keeping the " << auth_->token_count()
               << " tokens loaded before: " << s.message();
    return;
  }
  LOG(INFO) << "SIGHUP: loaded " << auth_->token_count() << " tokens from "
            << auth_->path();
}

void Server::SampleMetrics() {
  metrics_->SetActiveTransactions(engine_->GetStats().active);
  absl::StatusOr<int64_t> due = store_->CountDue(
      SystemClock::Get()->NowMs(), static_cast<int>(Metrics::kMaxDueCounted));
  if (due.ok()) metrics_->SetDueTransactions(*due);
  if (retention_ != nullptr) {
    const int64_t deleted = retention_->deleted_total();
    metrics_->RetentionDeleted(deleted -
                               retention_deleted_sampled_.exchange(deleted));
  }
}

void Server::WatchStore() {
  constexpr absl::Duration kInterval = absl::Milliseconds(500);
  constexpr absl::Duration kRecoveryInterval = absl::Milliseconds(10);
  bool serving = false;
  bool served_once = false;
  absl::MutexLock lock(&watch_mu_);
  while (!watch_mu_.AwaitWithTimeout(
      absl::Condition(&watch_stop_),
      engine_->Recovered() ? kInterval : kRecoveryInterval)) {
    absl::Status health = store_->WriteHealth();
    if (!health.ok() && !absl::IsUnavailable(health)) {
      // Latched (a failed WAL sync): nothing written from now on can be
      // trusted, so no orderly shutdown that would write; the restart
      // recovers from what is on disk.
      LOG(ERROR) << "dtmd: store stopped writing: " << health
                 << "; exiting with code " << kExitStoreFailed;
      google::FlushLogFiles(google::GLOG_INFO);
      std::_Exit(kExitStoreFailed);
    }
    if (!engine_->Recovered()) continue;
    if (health.ok() != serving) {
      serving = health.ok();
      if (serving && !served_once) {
        served_once = true;
        LOG(INFO) << "dtmd: recovered: SERVING";
      } else if (serving) {
        LOG(WARNING) << "dtmd: store writes again: SERVING";
      } else {
        LOG(ERROR) << "dtmd: store cannot write (" << health
                   << "): NOT_SERVING until it recovers";
      }
      grpc_server_->GetHealthCheckService()->SetServingStatus(serving);
    }
  }
}

void Server::StopWatchingStore() {
  if (!store_watch_.joinable()) return;
  {
    absl::MutexLock lock(&watch_mu_);
    watch_stop_ = true;
  }
  store_watch_.join();
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  StopWatchingStore();
  // Health checks answer NOT_SERVING from here on, so that load balancers
  // and Kubernetes stop sending work.
  if (grpc_server_ && grpc_server_->GetHealthCheckService() != nullptr) {
    grpc_server_->GetHealthCheckService()->Shutdown();
  }
  if (retention_) retention_->Stop();
  if (http_api_) http_api_->StopAccepting();
  // Waiting callers are answered first, so the gRPC shutdown below only has
  // quick replies left to finish.
  if (engine_) engine_->Shutdown();
  if (http_api_) http_api_->Stop();
  // Scrapes still answer, without the engine's gauges.
  if (metrics_) metrics_->SetSampler(nullptr);
  if (grpc_server_) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(5));
    LOG(INFO) << "dtmd stopped";
  }
}

// The members then go in reverse declaration order (see server.h).
Server::~Server() { Shutdown(); }

}  // namespace dtmd
