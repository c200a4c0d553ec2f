// dtmd's configuration: one struct, filled from the flags, which a YAML file
// and DTM-style environment variables (GRPC_PORT, RETRY_INTERVAL, ...) set
// first (server/config_sources.h).
#ifndef DTMD_SERVER_CONFIG_H_
#define DTMD_SERVER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dtmd {

struct Config {
  std::string listen_address = "0.0.0.0";
  int grpc_port = 36790;       // 0: let the OS choose (see port_file).
  std::string port_file;       // if set, the bound port is written here.
  int http_port = 36789;       // DTM's HTTP API; 0: off; -1: OS chooses.
  std::string http_port_file;  // if set, the bound HTTP port is written here.
  // Prometheus metrics over HTTP on listen_address:metrics_port/metrics;
  // 0: no metrics.
  int metrics_port = 8889;
  std::string data_dir = "./data";
  std::string advertise_address;  // sent to branches as dtm-dtm.
  // Store: "rocksdb" (embedded, data_dir) or "postgres" (shared by
  // replicas, storage/postgres_store.h).
  std::string store_driver = "rocksdb";
  std::string postgres_dsn;
  // The shared store's lease owner name (set when store_driver is postgres;
  // sent to branches as dtmd-replica) and the leases' duration.
  std::string replica_id;
  int64_t lease_timeout_s = 10;

  // Timing defaults (seconds), docs/protocol.md section 6.
  int64_t timeout_to_fail_s = 35;  // tcc, xa, msg; sagas have none.
  int64_t retry_interval_s = 10;
  int64_t request_timeout_s = 3;
  int64_t cron_interval_s = 3;
  int64_t max_retry_interval_s = 3600;  // cap on the doubled interval.
  int64_t wait_result_grace_s = 2;      // WaitResult waits RequestTimeout+this.

  // Retry alerts (server/retry_alert.h): a branch whose retries reach this
  // (then twice it, four times, ...) is reported; 0: never.
  int64_t alert_retry_limit = 3;
  std::string alert_webhook;  // http(s) URL the alerts are posted to; "": none.
  int64_t alert_webhook_timeout_s = 5;  // per POST.

  // Limits; over a limit is INVALID_ARGUMENT.
  int max_gid_bytes = 128;
  int max_steps = 1000;
  int max_branches = 10000;  // branch records in one transaction.
  int max_url_bytes = 1024;
  int64_t max_request_bytes = 16 << 20;
  int max_branch_headers = 64;
  // BranchHeaders' size as gRPC counts metadata (name + value + 32 bytes per
  // entry, -bin values base64-encoded). gRPC peers refuse more than 8 KiB of
  // metadata by default; the rest leaves room for dtm-* and gRPC's own.
  int max_branch_headers_bytes = 4096;
  int64_t max_request_timeout_s = 300;  // cap on RequestTimeout.
  int max_order_edges = 10000;          // entries in a saga's orders lists.

  // Branch channels: one per host:port, at most this many (least recently
  // used dropped first), and dropped after this long unused.
  int max_branch_channels = 1024;
  int64_t branch_channel_idle_s = 600;
  // HTTP branches (http:// and https:// URLs): kept-alive connections,
  // at most this many to one host:port and in all; calls over the bound
  // wait for a free connection.
  int max_http_host_connections = 16;
  int max_http_connections = 256;

  // Store (storage/rocksdb_store.h).
  bool accept_data_loss = false;  // open a damaged store anyway.
  int64_t store_max_queued_writes = 100000;
  int64_t store_max_queued_bytes = int64_t{256} << 20;
  // For tests only: WAL syncs after the first N fail (the store latches);
  // -1: off.
  int64_t testing_fail_wal_sync_after = -1;
  // For tests only: the first due-index scan waits this long.
  int64_t testing_recovery_delay_ms = 0;

  // Retention (server/retention.h): finished transactions are deleted this
  // long after they finished; 0 keeps them forever.
  int64_t retention_s = 7 * 24 * 3600;
  int retention_batch_size = 500;               // transactions per deletion.
  int64_t retention_batch_pause_ms = 50;        // between deletions of a pass.
  int64_t retention_compact_interval_s = 3600;  // 0: after every pass.

  int worker_threads = 0;               // 0: number of cores, at least 2.
  int max_active_transactions = 20000;  // runners in memory at once.
  int max_queued_events = 100000;       // over it: RESOURCE_EXHAUSTED.
  int64_t grpc_memory_mib = 1024;       // gRPC server resource quota.
  std::string log_level = "info";       // debug, info, warn, error.

  // Security (server/security.h). Empty paths: off.
  std::string tls_cert_file;       // PEM chain; with tls_key_file: TLS.
  std::string tls_key_file;        // PEM private key.
  std::string tls_client_ca_file;  // if set, client certificates required.
  // With TLS: a plaintext port for health checks (0: the OS picks); -1: none.
  int health_port = -1;
  std::string auth_token_file;  // bearer tokens; reloaded on SIGHUP.
  // Branch calls over TLS: to every target, or to these host:port targets.
  bool branch_tls_all = false;
  std::vector<std::string> branch_tls_targets;
  std::string branch_tls_ca_file;    // roots; gRPC's defaults if empty.
  std::string branch_tls_cert_file;  // optional client certificate ...
  std::string branch_tls_key_file;   // ... and its key.
};

// Reads the flags (after the YAML file and the environment were applied,
// server/config_sources.h, and absl::ParseCommandLine) into a Config.
// INVALID_ARGUMENT naming the flag for bad values.
absl::StatusOr<Config> ConfigFromFlags();

// The --config, --check_config and --print_config_reference flags.
std::string ConfigFileFlag();
bool CheckConfigFlag();
bool PrintConfigReferenceFlag();

}  // namespace dtmd

#endif  // DTMD_SERVER_CONFIG_H_
