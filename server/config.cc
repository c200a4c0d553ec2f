#include "server/config.h"

#include <unistd.h>

#include <random>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/retry_alert.h"
#include "server/txn/branch_url.h"

ABSL_FLAG(std::string, listen_address, "0.0.0.0",
          "Address the gRPC server listens on.");
ABSL_FLAG(int, grpc_port, 36790, "gRPC port; 0 lets the OS choose.");
ABSL_FLAG(int, metrics_port, 8889,
          "Port of the Prometheus metrics endpoint (HTTP, path /metrics) on "
          "--listen_address (IPv4 only: :: and ::1 serve on 0.0.0.0 and "
          "127.0.0.1); 0 disables metrics.");
ABSL_FLAG(int, http_port, 36789,
          "Port of DTM's HTTP API (JSON under /api/dtmsvr/, plaintext) on "
          "--listen_address; 0 disables it; -1 lets the OS choose (see "
          "--http_port_file). Off when --tls_cert_file is set: the HTTP API "
          "has no TLS.");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, the bound HTTP API port is written to this file (before "
          "--port_file is written).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written to this file.");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the embedded RocksDB store.");
ABSL_FLAG(std::string, store, "rocksdb",
          "Where transactions are kept: 'rocksdb' (embedded, in --data_dir; "
          "DTM's 'boltdb' means the same) or 'postgres' (a PostgreSQL shared "
          "by several dtmd replicas, --postgres_dsn).");
ABSL_FLAG(std::string, postgres_dsn, "",
          "libpq connection string or URI of the shared PostgreSQL "
          "(--store=postgres), e.g. "
          "postgresql://dtmd:secret@db:5432/dtmd. The schema is created "
          "and migrated at start.");
// DTM's SQL store settings: with --store=postgres and no --postgres_dsn,
// the DSN is built from them, so that a DTM configuration for PostgreSQL
// works as it is.
ABSL_FLAG(std::string, store_host, "",
          "With --store=postgres and no --postgres_dsn: the PostgreSQL host "
          "(DTM's Store.Host).");
ABSL_FLAG(int64_t, store_port, 0,
          "With --store=postgres and no --postgres_dsn: the PostgreSQL port "
          "(DTM's Store.Port); 0: libpq's default, 5432.");
ABSL_FLAG(std::string, store_user, "",
          "With --store=postgres and no --postgres_dsn: the user (DTM's "
          "Store.User).");
ABSL_FLAG(std::string, store_password, "",
          "With --store=postgres and no --postgres_dsn: the password (DTM's "
          "Store.Password); prefer the environment (STORE_PASSWORD) or a DSN "
          "in a secret to a command line.");
ABSL_FLAG(std::string, store_db, "",
          "With --store=postgres and no --postgres_dsn: the database (DTM's "
          "Store.Db).");
ABSL_FLAG(std::string, store_schema, "",
          "With --store=postgres and no --postgres_dsn: the schema dtmd's "
          "tables live in (DTM's Store.Schema; search_path), '' for the "
          "user's default.");
ABSL_FLAG(std::string, replica_id, "",
          "This replica's name in the shared store's leases "
          "(--store=postgres); unique among live replicas. Default: "
          "<hostname>-<pid>-<random>.");
ABSL_FLAG(int64_t, lease_timeout, 10,
          "Seconds a replica's lease on a transaction lasts without renewal "
          "(--store=postgres): a dead replica's transactions are "
          "taken over this long after its last renewal.");
ABSL_FLAG(std::string, advertise_address, "",
          "This coordinator's address as sent to branches in dtm-dtm.");
ABSL_FLAG(int64_t, timeout_to_fail, 35,
          "Default TimeoutToFail in seconds for tcc, xa and msg.");
ABSL_FLAG(int64_t, retry_interval, 10,
          "Default RetryInterval, seconds; doubled on each failed round up to "
          "--max_retry_interval.");
ABSL_FLAG(int64_t, request_timeout, 3,
          "Default RequestTimeout for branch calls, seconds.");
ABSL_FLAG(int64_t, cron_interval, 3,
          "How often the store's due index is polled, seconds.");
ABSL_FLAG(int64_t, max_retry_interval, 3600,
          "Cap on the doubled retry interval, seconds.");
ABSL_FLAG(int64_t, alert_retry_limit, 3,
          "A branch retried this many times (and again at each doubling: "
          "2x, 4x, ...) without success is logged at WARNING and posted to "
          "--alert_webhook; 0 turns retry alerts off.");
ABSL_FLAG(std::string, alert_webhook, "",
          "http:// or https:// URL that retry alerts are POSTed to as JSON "
          "(gid, status, retry_count, branch_id, op, url, last_error, "
          "last_code, ...); empty: none.");
ABSL_FLAG(int64_t, alert_webhook_timeout, 5,
          "Timeout of one POST to --alert_webhook, seconds (1..3600).");
ABSL_FLAG(int, max_gid_bytes, 128, "Longest accepted gid.");
ABSL_FLAG(int, max_steps, 1000, "Most steps in one saga.");
ABSL_FLAG(int, max_branches, 10000,
          "Most branch records in one transaction: TCC/XA registrations (two "
          "records each), workflow steps, msg steps after topic expansion.");
ABSL_FLAG(int64_t, max_request_bytes, 16 << 20,
          "Largest accepted request (payloads included), bytes.");
ABSL_FLAG(int, max_branch_headers, 64, "Most BranchHeaders entries.");
ABSL_FLAG(bool, accept_data_loss, false,
          "Start even if the store's WAL or MANIFEST is damaged or its files "
          "are gone, with whatever can be recovered (possibly nothing). "
          "Without it dtmd refuses to start and names the damage.");
ABSL_FLAG(int64_t, store_max_queued_writes, 100000,
          "Most store writes waiting for the writer; more are answered "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, store_max_queued_bytes, int64_t{256} << 20,
          "Most bytes of records waiting for the store's writer.");
ABSL_FLAG(int64_t, testing_fail_wal_sync_after, -1,
          "For tests only: WAL syncs after the first N fail, as a failing "
          "disk would (dtmd must exit 3). -1: off.");
ABSL_FLAG(int64_t, testing_recovery_delay_ms, 0,
          "For tests only: the first due-index scan (recovery) waits this "
          "long, so that health can be seen NOT_SERVING before it.");
ABSL_FLAG(int, max_branch_headers_bytes, 4096,
          "Largest BranchHeaders as gRPC counts metadata: names + values + 32 "
          "bytes per entry (gRPC peers accept 8 KiB of metadata by default).");
ABSL_FLAG(int64_t, max_request_timeout, 300,
          "Largest RequestTimeout a transaction may ask for, seconds "
          "(--request_timeout must not exceed it).");
ABSL_FLAG(int, max_order_edges, 10000,
          "Most entries in a saga's CustomedData.orders lists together.");
ABSL_FLAG(int, max_branch_channels, 1024,
          "Most gRPC channels to branch targets kept open; the least "
          "recently used is closed first.");
ABSL_FLAG(int64_t, branch_channel_idle, 600,
          "A branch channel unused this long is closed, seconds (calls in "
          "flight keep theirs).");
ABSL_FLAG(int, max_http_host_connections, 16,
          "Most connections open at once to one host:port of HTTP branches "
          "(http:// and https:// URLs); more calls to it wait for one to be "
          "free. Connections are kept alive and reused.");
ABSL_FLAG(int, max_http_connections, 256,
          "Most connections to HTTP branches open at once in all (and kept "
          "alive when idle); more calls wait for one to be free.");
ABSL_FLAG(int, worker_threads, 0,
          "Engine threads; 0: the number of cores (at least 2).");
ABSL_FLAG(int64_t, retention, 7 * 24 * 3600,
          "Seconds after which a finished (succeed or failed) transaction is "
          "deleted with its branches; 0 keeps them forever.");
ABSL_FLAG(int, retention_batch_size, 500,
          "Finished transactions deleted in one store write by retention.");
ABSL_FLAG(int64_t, retention_batch_pause_ms, 50,
          "Pause between two retention deletions of one pass, milliseconds.");
ABSL_FLAG(int64_t, retention_compact_interval, 3600,
          "Least time between two compactions that give the space of deleted "
          "transactions back to the file system, seconds; 0 compacts after "
          "every retention pass that deleted something.");
ABSL_FLAG(int, max_active_transactions, 20000,
          "Most transactions driven at once; the rest stay in the store and "
          "are driven as runners retire.");
ABSL_FLAG(int, max_queued_events, 100000,
          "Engine events queued beyond which new requests get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, grpc_memory_mib, 1024,
          "Memory quota of the gRPC server (requests in flight), MiB.");
ABSL_FLAG(std::string, log_level, "info",
          "Least severe log lines written: debug, info, warn or error.");

// Where the settings come from (server/config_sources.h); not settings.
ABSL_FLAG(std::string, config, "",
          "YAML configuration file (README, \"Configuration reference\"). "
          "Environment variables override it, flags override both.");
ABSL_FLAG(bool, check_config, false,
          "Check the configuration (file, environment, flags) and exit: 0 "
          "if dtmd would start with it, 2 naming the first problem.");
ABSL_FLAG(bool, print_config_reference, false,
          "Print every setting (YAML key, environment variable, flag, "
          "default, meaning) as a Markdown table and exit.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the gRPC server; with --tls_key_file the "
          "server speaks TLS only. Empty: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key for --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA certificates; if set, every client must present a "
          "certificate signed by one of them (mutual TLS). Needs "
          "--tls_cert_file.");
ABSL_FLAG(int, health_port, -1,
          "With --tls_cert_file: a second, plaintext port for gRPC health "
          "checks (and reflection), for probes that cannot speak TLS such as "
          "Kubernetes' gRPC probes; the Dtm and Admin services refuse calls "
          "on it. 0 lets the OS choose (written as the second line of "
          "--port_file); -1: none.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File of bearer tokens, one per line ('#' comments and blank lines "
          "ignored); the Dtm and Admin services then require gRPC metadata "
          "'authorization: Bearer <token>'. Re-read on SIGHUP . Empty: no "
          "authentication.");
ABSL_FLAG(std::string, branch_tls, "",
          "Branch targets called over TLS: '*' for all, or a comma-separated "
          "list of host:port exactly as in branch URLs. "
          "Empty: every branch call is plaintext.");
ABSL_FLAG(std::string, branch_tls_ca_file, "",
          "PEM CA certificates that branch servers' certificates are "
          "verified against, for --branch_tls targets and https:// branch "
          "URLs; the default roots (gRPC's, the system's for https) if "
          "empty.");
ABSL_FLAG(std::string, branch_tls_cert_file, "",
          "PEM client certificate dtmd presents to TLS branch servers "
          "(--branch_tls targets and https:// URLs; optional; with "
          "--branch_tls_key_file).");
ABSL_FLAG(std::string, branch_tls_key_file, "",
          "PEM private key for --branch_tls_cert_file.");

namespace dtmd {
namespace {

// <hostname>-<pid>-<random>: unique among live processes, new at each start
// (a restarted replica's old leases expire rather than being adopted).
std::string DefaultReplicaId() {
  char host[256] = {};
  std::string name = "dtmd";
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') {
    name = host;
  }
  std::random_device random;
  return absl::StrCat(name, "-", getpid(), "-",
                      absl::Hex(random() & 0xffffff, absl::kZeroPad6));
}

// A libpq conninfo value: quoted, with ' and \ escaped.
std::string ConninfoValue(const std::string& value) {
  std::string out = "'";
  for (char ch : value) {
    if (ch == '\'' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "'";
}

// The DSN DTM's Store.* settings describe; empty when no host is set.
std::string DsnFromDtmSettings() {
  const std::string host = absl::GetFlag(FLAGS_store_host);
  if (host.empty()) return "";
  std::string dsn = absl::StrCat("host=", ConninfoValue(host));
  if (int64_t port = absl::GetFlag(FLAGS_store_port); port > 0) {
    absl::StrAppend(&dsn, " port=", port);
  }
  for (auto [key, value] : {std::pair<const char*, std::string>{
                                "user", absl::GetFlag(FLAGS_store_user)},
                            {"password", absl::GetFlag(FLAGS_store_password)},
                            {"dbname", absl::GetFlag(FLAGS_store_db)}}) {
    if (!value.empty())
      absl::StrAppend(&dsn, " ", key, "=", ConninfoValue(value));
  }
  if (std::string schema = absl::GetFlag(FLAGS_store_schema); !schema.empty()) {
    // search_path in the server options; a schema name may need quoting.
    std::string quoted = "\"";
    for (char ch : schema) {
      if (ch == '"') quoted += '"';
      quoted += ch;
    }
    quoted += '"';
    absl::StrAppend(&dsn, " options=",
                    ConninfoValue(absl::StrCat("-c search_path=", quoted)));
  }
  return dsn;
}

absl::Status Positive(const char* name, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, " must be positive, got ", value));
}

// --branch_tls: "" (none), "*" (all) or host:port entries as in branch URLs.
absl::Status ParseBranchTls(const std::string& value, Config* c) {
  for (absl::string_view entry : absl::StrSplit(value, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) continue;
    if (entry == "*") {
      c->branch_tls_all = true;
      continue;
    }
    absl::StatusOr<txn::BranchTarget> target =
        txn::ParseBranchUrl(absl::StrCat(entry, "/x.Y/Z"));
    if (!target.ok() || target->target != entry) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--branch_tls: '", entry,
          "' is not '*' or host:port as written in branch URLs",
          target.ok() ? ""
                      : absl::StrCat(" (", target.status().message(), ")")));
    }
    c->branch_tls_targets.emplace_back(entry);
  }
  return absl::OkStatus();
}

absl::Status CheckSecurity(Config* c) {
  if (c->tls_cert_file.empty() != c->tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together");
  }
  if (!c->tls_client_ca_file.empty() && c->tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file needs --tls_cert_file and --tls_key_file");
  }
  if (c->health_port < -1 || c->health_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--health_port must be -1 (none) or 0..65535, got ", c->health_port));
  }
  if (c->health_port >= 0 && c->tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--health_port is for a TLS server (--tls_cert_file); without TLS "
        "the gRPC port answers health checks");
  }
  if (c->branch_tls_cert_file.empty() != c->branch_tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--branch_tls_cert_file and --branch_tls_key_file go together");
  }
  if (absl::Status s = ParseBranchTls(absl::GetFlag(FLAGS_branch_tls), c);
      !s.ok()) {
    return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ConfigFromFlags() {
  Config c;
  c.listen_address = absl::GetFlag(FLAGS_listen_address);
  c.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  c.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  c.port_file = absl::GetFlag(FLAGS_port_file);
  c.http_port = absl::GetFlag(FLAGS_http_port);
  c.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  c.data_dir = absl::GetFlag(FLAGS_data_dir);
  c.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  c.store_driver = absl::GetFlag(FLAGS_store);
  c.postgres_dsn = absl::GetFlag(FLAGS_postgres_dsn);
  c.replica_id = absl::GetFlag(FLAGS_replica_id);
  c.lease_timeout_s = absl::GetFlag(FLAGS_lease_timeout);
  c.timeout_to_fail_s = absl::GetFlag(FLAGS_timeout_to_fail);
  c.retry_interval_s = absl::GetFlag(FLAGS_retry_interval);
  c.request_timeout_s = absl::GetFlag(FLAGS_request_timeout);
  c.cron_interval_s = absl::GetFlag(FLAGS_cron_interval);
  c.max_retry_interval_s = absl::GetFlag(FLAGS_max_retry_interval);
  c.alert_retry_limit = absl::GetFlag(FLAGS_alert_retry_limit);
  c.alert_webhook = absl::GetFlag(FLAGS_alert_webhook);
  c.alert_webhook_timeout_s = absl::GetFlag(FLAGS_alert_webhook_timeout);
  c.max_gid_bytes = absl::GetFlag(FLAGS_max_gid_bytes);
  c.max_steps = absl::GetFlag(FLAGS_max_steps);
  c.max_branches = absl::GetFlag(FLAGS_max_branches);
  c.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  c.max_branch_headers = absl::GetFlag(FLAGS_max_branch_headers);
  c.accept_data_loss = absl::GetFlag(FLAGS_accept_data_loss);
  c.store_max_queued_writes = absl::GetFlag(FLAGS_store_max_queued_writes);
  c.store_max_queued_bytes = absl::GetFlag(FLAGS_store_max_queued_bytes);
  c.testing_fail_wal_sync_after =
      absl::GetFlag(FLAGS_testing_fail_wal_sync_after);
  c.testing_recovery_delay_ms = absl::GetFlag(FLAGS_testing_recovery_delay_ms);
  c.max_branch_headers_bytes = absl::GetFlag(FLAGS_max_branch_headers_bytes);
  c.max_request_timeout_s = absl::GetFlag(FLAGS_max_request_timeout);
  c.max_order_edges = absl::GetFlag(FLAGS_max_order_edges);
  c.max_branch_channels = absl::GetFlag(FLAGS_max_branch_channels);
  c.branch_channel_idle_s = absl::GetFlag(FLAGS_branch_channel_idle);
  c.max_http_host_connections = absl::GetFlag(FLAGS_max_http_host_connections);
  c.max_http_connections = absl::GetFlag(FLAGS_max_http_connections);
  c.retention_s = absl::GetFlag(FLAGS_retention);
  c.retention_batch_size = absl::GetFlag(FLAGS_retention_batch_size);
  c.retention_batch_pause_ms = absl::GetFlag(FLAGS_retention_batch_pause_ms);
  c.retention_compact_interval_s =
      absl::GetFlag(FLAGS_retention_compact_interval);
  c.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  c.max_active_transactions = absl::GetFlag(FLAGS_max_active_transactions);
  c.max_queued_events = absl::GetFlag(FLAGS_max_queued_events);
  c.grpc_memory_mib = absl::GetFlag(FLAGS_grpc_memory_mib);
  c.log_level = absl::GetFlag(FLAGS_log_level);
  c.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  c.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  c.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  c.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  c.health_port = absl::GetFlag(FLAGS_health_port);
  c.branch_tls_ca_file = absl::GetFlag(FLAGS_branch_tls_ca_file);
  c.branch_tls_cert_file = absl::GetFlag(FLAGS_branch_tls_cert_file);
  c.branch_tls_key_file = absl::GetFlag(FLAGS_branch_tls_key_file);

  if (c.grpc_port < 0 || c.grpc_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--grpc_port must be 0..65535, got ", c.grpc_port));
  }
  if (c.http_port < -1 || c.http_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http_port must be -1 (OS chooses), 0 (off) or 1..65535, got ",
        c.http_port));
  }
  if (c.metrics_port < 0 || c.metrics_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_port must be 0..65535 (0: off), got ", c.metrics_port));
  }
  if (c.data_dir.empty()) {
    return absl::InvalidArgumentError("--data_dir must not be empty");
  }
  if (c.store_driver == "boltdb") c.store_driver = "rocksdb";
  if (c.store_driver != "rocksdb" && c.store_driver != "postgres") {
    return absl::InvalidArgumentError(
        absl::StrCat("--store must be rocksdb (or boltdb) or postgres, got '",
                     c.store_driver, "'"));
  }
  if (c.store_driver == "postgres") {
    if (c.postgres_dsn.empty()) c.postgres_dsn = DsnFromDtmSettings();
    if (c.postgres_dsn.empty()) {
      return absl::InvalidArgumentError(
          "--store=postgres needs --postgres_dsn (or DTM's Store.Host, "
          "Store.User, ...)");
    }
    if (c.replica_id.empty()) c.replica_id = DefaultReplicaId();
  }
  if (c.lease_timeout_s < 1 || c.lease_timeout_s > 3600) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lease_timeout must be 1..3600 seconds, got ", c.lease_timeout_s));
  }
  for (absl::Status s :
       {Positive("timeout_to_fail", c.timeout_to_fail_s),
        Positive("retry_interval", c.retry_interval_s),
        Positive("request_timeout", c.request_timeout_s),
        Positive("cron_interval", c.cron_interval_s),
        Positive("max_retry_interval", c.max_retry_interval_s),
        Positive("alert_webhook_timeout", c.alert_webhook_timeout_s),
        Positive("max_gid_bytes", c.max_gid_bytes),
        Positive("max_steps", c.max_steps),
        Positive("max_branches", c.max_branches),
        Positive("max_request_bytes", c.max_request_bytes),
        Positive("max_branch_headers", c.max_branch_headers),
        Positive("max_branch_headers_bytes", c.max_branch_headers_bytes),
        Positive("max_request_timeout", c.max_request_timeout_s),
        Positive("max_order_edges", c.max_order_edges),
        Positive("max_branch_channels", c.max_branch_channels),
        Positive("branch_channel_idle", c.branch_channel_idle_s),
        Positive("max_http_host_connections", c.max_http_host_connections),
        Positive("max_http_connections", c.max_http_connections),
        Positive("max_active_transactions", c.max_active_transactions),
        Positive("max_queued_events", c.max_queued_events),
        Positive("grpc_memory_mib", c.grpc_memory_mib),
        Positive("store_max_queued_writes", c.store_max_queued_writes),
        Positive("store_max_queued_bytes", c.store_max_queued_bytes),
        Positive("retention_batch_size", c.retention_batch_size)}) {
    if (!s.ok()) return s;
  }
  if (c.request_timeout_s > c.max_request_timeout_s) {
    return absl::InvalidArgumentError(
        absl::StrCat("--request_timeout (", c.request_timeout_s,
                     ") must not exceed --max_request_timeout (",
                     c.max_request_timeout_s, ")"));
  }
  if (c.log_level != "debug" && c.log_level != "info" &&
      c.log_level != "warn" && c.log_level != "error") {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level must be debug, info, warn or error, got '",
                     c.log_level, "'"));
  }
  if (c.alert_webhook_timeout_s > 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat("--alert_webhook_timeout must be at most 3600, got ",
                     c.alert_webhook_timeout_s));
  }
  if (c.alert_retry_limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--alert_retry_limit must be >= 0, got ", c.alert_retry_limit));
  }
  if (std::string why;
      !c.alert_webhook.empty() && !IsWebhookUrl(c.alert_webhook, &why)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--alert_webhook '", c.alert_webhook, "' ", why));
  }
  // Bounded so that the times in milliseconds cannot overflow.
  constexpr int64_t kMaxSeconds = int64_t{1} << 43;
  for (auto [name, value] :
       {std::pair<const char*, int64_t>{"retention", c.retention_s},
        {"retention_batch_pause_ms", c.retention_batch_pause_ms},
        {"retention_compact_interval", c.retention_compact_interval_s}}) {
    if (value < 0 || value > kMaxSeconds) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " must be 0..", kMaxSeconds, ", got ", value));
    }
  }
  // One deletion holds the store's writer: keep it short.
  constexpr int kMaxRetentionBatch = 100000;
  if (c.retention_batch_size > kMaxRetentionBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("--retention_batch_size must be at most ",
                     kMaxRetentionBatch, ", got ", c.retention_batch_size));
  }
  if (c.worker_threads < 0) {
    return absl::InvalidArgumentError("--worker_threads must be >= 0");
  }
  if (absl::Status s = CheckSecurity(&c); !s.ok()) return s;
  return c;
}

std::string ConfigFileFlag() { return absl::GetFlag(FLAGS_config); }
bool CheckConfigFlag() { return absl::GetFlag(FLAGS_check_config); }
bool PrintConfigReferenceFlag() {
  return absl::GetFlag(FLAGS_print_config_reference);
}

}  // namespace dtmd
