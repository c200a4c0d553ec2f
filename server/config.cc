#include "server/config.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, listen_address, "0.0.0.0",
          "Address the gRPC server listens on (env LISTEN_ADDRESS).");
ABSL_FLAG(int, grpc_port, 36790,
          "gRPC port; 0 lets the OS choose (env GRPC_PORT).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written to this file.");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the embedded RocksDB store (env DATA_DIR).");
ABSL_FLAG(std::string, advertise_address, "",
          "This coordinator's address as sent to branches in dtm-dtm.");
ABSL_FLAG(int64_t, timeout_to_fail, 35,
          "Default TimeoutToFail in seconds for tcc, xa and msg.");
ABSL_FLAG(int64_t, retry_interval, 10,
          "Default RetryInterval in seconds (env RETRY_INTERVAL).");
ABSL_FLAG(int64_t, request_timeout, 3,
          "Default RequestTimeout for branch calls, seconds.");
ABSL_FLAG(int64_t, cron_interval, 3,
          "How often the store's due index is polled, seconds.");
ABSL_FLAG(int64_t, max_retry_interval, 3600,
          "Cap on the doubled retry interval, seconds.");
ABSL_FLAG(int, max_gid_bytes, 128, "Longest accepted gid.");
ABSL_FLAG(int, max_steps, 1000, "Most steps in one saga.");
ABSL_FLAG(int, max_branches, 10000,
          "Most branch records in one transaction (TCC/XA registrations, "
          "msg steps expanded to topic subscribers).");
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
ABSL_FLAG(int, max_branch_headers_bytes, 4096,
          "Largest BranchHeaders as gRPC counts metadata: names + values + 32 "
          "bytes per entry (gRPC peers accept 8 KiB of metadata by default).");
ABSL_FLAG(int64_t, max_request_timeout, 300,
          "Largest accepted RequestTimeout, seconds.");
ABSL_FLAG(int, max_order_edges, 10000,
          "Most entries in a saga's CustomedData.orders lists together.");
ABSL_FLAG(int, max_branch_channels, 1024,
          "Most gRPC channels to branch targets kept open.");
ABSL_FLAG(int64_t, branch_channel_idle, 600,
          "A branch channel unused this long (seconds) is closed.");
ABSL_FLAG(int64_t, retention, 7 * 24 * 3600,
          "Seconds after which a finished (succeed or failed) transaction is "
          "deleted with its branches; 0 keeps them forever (env "
          "STORE_DATA_EXPIRE).");
ABSL_FLAG(int, retention_batch_size, 500,
          "Finished transactions deleted in one store write by retention.");
ABSL_FLAG(int64_t, retention_batch_pause_ms, 50,
          "Pause between two retention deletions of one pass, milliseconds.");
ABSL_FLAG(int64_t, retention_compact_interval, 3600,
          "Least time between two compactions that give the space of deleted "
          "transactions back to the file system, seconds; 0 compacts after "
          "every retention pass that deleted something.");
ABSL_FLAG(int, worker_threads, 0, "Engine threads; 0 = number of cores.");
ABSL_FLAG(int, max_active_transactions, 20000,
          "Most transactions driven at once; more wait in the due index.");
ABSL_FLAG(int, max_queued_events, 100000,
          "Engine events queued beyond which new requests get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, grpc_memory_mib, 1024,
          "Memory quota of the gRPC server (requests in flight), MiB.");

namespace dtmd {
namespace {

struct EnvFlag {
  const char* env;
  const char* flag;
};

// DTM's configuration names, upper-cased as environment variables.
constexpr EnvFlag kEnvFlags[] = {
    {"LISTEN_ADDRESS", "listen_address"},
    {"GRPC_PORT", "grpc_port"},
    {"DATA_DIR", "data_dir"},
    {"ADVERTISE_ADDRESS", "advertise_address"},
    {"TIMEOUT_TO_FAIL", "timeout_to_fail"},
    {"RETRY_INTERVAL", "retry_interval"},
    {"REQUEST_TIMEOUT", "request_timeout"},
    {"CRON_JOB_INTERVAL", "cron_interval"},
    {"MAX_RETRY_INTERVAL", "max_retry_interval"},
    {"STORE_DATA_EXPIRE", "retention"},
};

absl::Status Positive(const char* name, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, " must be positive, got ", value));
}

}  // namespace

void ApplyEnvironmentToFlags() {
  for (const EnvFlag& e : kEnvFlags) {
    const char* value = std::getenv(e.env);
    if (value == nullptr || *value == '\0') continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(e.flag);
    std::string error;
    if (flag != nullptr && !flag->ParseFrom(value, &error)) {
      // Reported, not fatal: the flag keeps its default.
      fprintf(stderr, "ignoring %s=%s: %s\n", e.env, value, error.c_str());
    }
  }
}

absl::StatusOr<Config> ConfigFromFlags() {
  Config c;
  c.listen_address = absl::GetFlag(FLAGS_listen_address);
  c.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  c.port_file = absl::GetFlag(FLAGS_port_file);
  c.data_dir = absl::GetFlag(FLAGS_data_dir);
  c.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  c.timeout_to_fail_s = absl::GetFlag(FLAGS_timeout_to_fail);
  c.retry_interval_s = absl::GetFlag(FLAGS_retry_interval);
  c.request_timeout_s = absl::GetFlag(FLAGS_request_timeout);
  c.cron_interval_s = absl::GetFlag(FLAGS_cron_interval);
  c.max_retry_interval_s = absl::GetFlag(FLAGS_max_retry_interval);
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
  c.max_branch_headers_bytes = absl::GetFlag(FLAGS_max_branch_headers_bytes);
  c.max_request_timeout_s = absl::GetFlag(FLAGS_max_request_timeout);
  c.max_order_edges = absl::GetFlag(FLAGS_max_order_edges);
  c.max_branch_channels = absl::GetFlag(FLAGS_max_branch_channels);
  c.branch_channel_idle_s = absl::GetFlag(FLAGS_branch_channel_idle);
  c.retention_s = absl::GetFlag(FLAGS_retention);
  c.retention_batch_size = absl::GetFlag(FLAGS_retention_batch_size);
  c.retention_batch_pause_ms = absl::GetFlag(FLAGS_retention_batch_pause_ms);
  c.retention_compact_interval_s =
      absl::GetFlag(FLAGS_retention_compact_interval);
  c.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  c.max_active_transactions = absl::GetFlag(FLAGS_max_active_transactions);
  c.max_queued_events = absl::GetFlag(FLAGS_max_queued_events);
  c.grpc_memory_mib = absl::GetFlag(FLAGS_grpc_memory_mib);

  if (c.grpc_port < 0 || c.grpc_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--grpc_port must be 0..65535, got ", c.grpc_port));
  }
  if (c.data_dir.empty()) {
    return absl::InvalidArgumentError("--data_dir must not be empty");
  }
  for (absl::Status s :
       {Positive("timeout_to_fail", c.timeout_to_fail_s),
        Positive("retry_interval", c.retry_interval_s),
        Positive("request_timeout", c.request_timeout_s),
        Positive("cron_interval", c.cron_interval_s),
        Positive("max_retry_interval", c.max_retry_interval_s),
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
  return c;
}

}  // namespace dtmd
