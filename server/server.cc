#include "server/server.h"

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
#include "storage/rocksdb_store.h"

namespace dtmd {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config) {
  std::unique_ptr<Server> server(new Server());
  storage::RocksDBStoreOptions store_options;
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
  absl::StatusOr<std::unique_ptr<storage::RocksDBStore>> store =
      storage::RocksDBStore::Open(store_options);
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  ChannelCache::Options channels;
  channels.max_channels = config.max_branch_channels;
  channels.idle_ms = config.branch_channel_idle_s * 1000;
  server->invoker_ =
      std::make_unique<GrpcBranchInvoker>(channels, SystemClock::Get());
  server->engine_ = std::make_unique<Engine>(
      config, server->store_.get(), server->invoker_.get(), SystemClock::Get());
  server->dtm_service_ = std::make_unique<DtmService>(server->engine_.get());
  server->admin_service_ =
      std::make_unique<AdminService>(server->engine_.get());

  grpc::EnableDefaultHealthCheckService(true);
  // Links the Health descriptor in, so reflection can describe the service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::string address =
      absl::StrCat(config.listen_address.find(':') != std::string::npos
                       ? absl::StrCat("[", config.listen_address, "]")
                       : config.listen_address,
                   ":", config.grpc_port);
  // No SO_REUSEPORT: a second dtmd on a taken port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<int64_t>(config.max_request_bytes + 4096, INT32_MAX)));
  // Bounds the memory requests in flight may take; over it gRPC refuses
  // new calls with RESOURCE_EXHAUSTED instead of growing without limit.
  grpc::ResourceQuota quota("dtmd");
  quota.Resize(static_cast<size_t>(config.grpc_memory_mib) << 20);
  builder.SetResourceQuota(quota);
  builder.RegisterService(server->dtm_service_.get());
  builder.RegisterService(server->admin_service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (port in use?)"));
  }
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
  server->store_watch_ = std::thread([s = server.get()] { s->WatchStore(); });
  LOG(INFO) << "dtmd " << DTMD_VERSION << " serving gRPC on "
            << config.listen_address << ":" << server->port_ << ", data in "
            << config.data_dir;
  return server;
}

void Server::WatchStore() {
  constexpr absl::Duration kInterval = absl::Milliseconds(500);
  bool serving = true;
  absl::MutexLock lock(&watch_mu_);
  while (
      !watch_mu_.AwaitWithTimeout(absl::Condition(&watch_stop_), kInterval)) {
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
    if (health.ok() != serving) {
      serving = health.ok();
      if (serving) {
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
  // Waiting callers are answered first, so the gRPC shutdown below only has
  // quick replies left to finish.
  if (engine_) engine_->Shutdown();
  if (grpc_server_) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(5));
    LOG(INFO) << "dtmd stopped";
  }
}

// The members then go in reverse declaration order (see server.h).
Server::~Server() { Shutdown(); }

}  // namespace dtmd
