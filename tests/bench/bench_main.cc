// dtmd-bench: closed-loop load against a coordinator that speaks DTM's gRPC
// protocol (dtmd, dtmd-relay or DTM itself), with a built-in branch server.
//
//   dtmd-bench --target=127.0.0.1:36790 --target_pid=$(pidof dtmd)
//              --shape=saga --concurrency=64 --duration=10
//              --relay=127.0.0.1:36795 --relay_pid=$(pidof dtmd-relay)
//
// Shapes over DTM's HTTP API (http-saga) also need the HTTP ports:
// --http_target (dtmd's --http_port) and --relay_http (the relay's).
//
// With --relay the same load runs against the relay right after, and the
// ratios dtmd/relay are printed: the figures that count on a noisy machine.
// --relay is one case of --baseline (any second coordinator, e.g. a dtmd on
// an empty store beside one on a full store); --baseline_name labels it.
//
// Replicas of one coordinator on a shared store: --target (and
// --http_target, --target_pid) take comma-separated lists; transactions go
// to the targets in turn and the CPU and memory figures add the processes up.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "tests/bench/bench_branch_server.h"
#include "tests/bench/load_driver.h"
#include "tests/bench/shapes.h"

ABSL_FLAG(std::string, target, "127.0.0.1:36790",
          "coordinator host:port; a comma-separated list: replicas sharing a "
          "store, sent transactions in turn");
ABSL_FLAG(std::string, target_pid, "",
          "coordinator pid (comma-separated: of each replica), for CPU and "
          "RSS figures");
ABSL_FLAG(std::string, http_target, "",
          "the coordinator's HTTP API host:port, for HTTP shapes (a list, as "
          "--target)");
ABSL_FLAG(std::string, relay, "", "dtmd-relay host:port to compare against");
ABSL_FLAG(std::string, relay_http, "",
          "the relay's HTTP host:port, for HTTP shapes");
ABSL_FLAG(int, relay_pid, 0, "relay pid, for CPU and RSS figures");
ABSL_FLAG(std::string, baseline, "",
          "another coordinator to compare against (instead of --relay)");
ABSL_FLAG(int, baseline_pid, 0, "baseline pid, for CPU and RSS figures");
ABSL_FLAG(std::string, baseline_http, "",
          "the baseline's HTTP API host:port (instead of --relay_http)");
ABSL_FLAG(std::string, baseline_name, "",
          "label of the baseline (default: relay)");
ABSL_FLAG(std::string, shape, "saga", "transaction shape (--list_shapes)");
ABSL_FLAG(bool, list_shapes, false, "print the shapes and exit");
ABSL_FLAG(int, concurrency, 64, "transactions in flight");
ABSL_FLAG(double, duration, 10, "measured seconds");
ABSL_FLAG(double, warmup, 2, "seconds of load before measuring");
ABSL_FLAG(int64_t, count, 0,
          "submit exactly this many transactions instead of a timed run");
ABSL_FLAG(int, channels, 2, "client connections to the coordinator");
ABSL_FLAG(std::string, branch_listen, "127.0.0.1:0",
          "where the built-in branch server listens");
ABSL_FLAG(int64_t, retry_interval, 0,
          "RetryInterval for shapes that keep retrying (0: default)");
ABSL_FLAG(std::string, gid_prefix, "",
          "gid prefix (default: unique per run, so runs can share a store)");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");
ABSL_FLAG(
    int, rounds, 1,
    "with a baseline: alternate target and baseline this many times, each "
    "for --duration, and add the rounds up (evens out machine drift)");

namespace {

std::vector<std::string> SplitList(const std::string& list) {
  return absl::StrSplit(list, ',', absl::SkipEmpty());
}

// Pids from a comma-separated list; nullopt if one is not a number.
std::optional<std::vector<pid_t>> ParsePids(const std::string& list) {
  std::vector<pid_t> pids;
  for (const std::string& item : SplitList(list)) {
    int pid = 0;
    if (!absl::SimpleAtoi(item, &pid)) return std::nullopt;
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

nlohmann::json ToJson(const dtmd::bench::LoadResult& r) {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, count] : r.errors) errors[code] = count;
  return {{"tps", r.tps},         {"p50_ms", r.p50_ms},
          {"p90_ms", r.p90_ms},   {"p99_ms", r.p99_ms},
          {"p999_ms", r.p999_ms}, {"max_ms", r.max_ms},
          {"errors", errors},     {"cpu_s_per_1k", r.cpu_s_per_1k},
          {"rss_mib", r.rss_mib}, {"completed", r.completed},
          {"seconds", r.seconds}};
}

std::string Row(const std::string& name, const dtmd::bench::LoadResult& r) {
  std::string errors;
  for (const auto& [code, count] : r.errors) {
    absl::StrAppend(&errors, errors.empty() ? "" : ",", code, "=", count);
  }
  return absl::StrFormat(
      "%-7s %10.1f %8.2f %8.2f %8.2f %8.2f %8.2f %9s %9s %8s  %s\n", name,
      r.tps, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms,
      absl::StrCat(r.completed - r.ok),
      r.cpu_s_per_1k < 0 ? "-" : absl::StrFormat("%.3f", r.cpu_s_per_1k),
      r.rss_mib < 0 ? "-" : absl::StrFormat("%.1f", r.rss_mib), errors);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "closed-loop load against a DTM-protocol coordinator");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_list_shapes)) {
    for (const auto& shape : dtmd::bench::Shapes()) {
      printf("%-24s %s\n", shape.name.c_str(), shape.description.c_str());
    }
    return 0;
  }
  const dtmd::bench::Shape* shape =
      dtmd::bench::FindShape(absl::GetFlag(FLAGS_shape));
  if (shape == nullptr) {
    fprintf(stderr, "unknown --shape %s (see --list_shapes)\n",
            absl::GetFlag(FLAGS_shape).c_str());
    return 2;
  }
  dtmd::bench::BenchBranchServer branches;
  absl::StatusOr<int> branch_port =
      branches.Start(absl::GetFlag(FLAGS_branch_listen));
  if (!branch_port.ok()) {
    fprintf(stderr, "%s\n", branch_port.status().ToString().c_str());
    return 1;
  }
  const std::string listen = absl::GetFlag(FLAGS_branch_listen);
  const std::string listen_host = listen.substr(0, listen.rfind(':'));
  absl::StatusOr<int> http_branch_port = branches.StartHttp(listen_host, 0);
  if (!http_branch_port.ok()) {
    fprintf(stderr, "%s\n", http_branch_port.status().ToString().c_str());
    return 1;
  }
  dtmd::bench::LoadOptions options;
  options.shape = shape;
  options.context.branch_address = absl::StrCat(listen_host, ":", *branch_port);
  options.context.http_branch_base =
      absl::StrCat("http://", listen_host, ":", *http_branch_port);
  options.context.retry_interval_s = absl::GetFlag(FLAGS_retry_interval);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.duration_s = absl::GetFlag(FLAGS_duration);
  options.warmup_s = absl::GetFlag(FLAGS_warmup);
  options.count = absl::GetFlag(FLAGS_count);
  options.channels = absl::GetFlag(FLAGS_channels);
  std::string prefix = absl::GetFlag(FLAGS_gid_prefix);
  if (prefix.empty()) {
    prefix = absl::StrCat("b", getpid(), "-", absl::ToUnixMillis(absl::Now()));
  }
  if (options.concurrency < 1 || options.duration_s <= 0 ||
      options.warmup_s < 0 || options.count < 0) {
    fprintf(stderr, "bad --concurrency, --duration, --warmup or --count\n");
    return 2;
  }

  const std::optional<std::vector<pid_t>> target_pids =
      ParsePids(absl::GetFlag(FLAGS_target_pid));
  if (!target_pids) {
    fprintf(stderr, "bad --target_pid\n");
    return 2;
  }
  auto run =
      [&](const std::string& targets, const std::string& http_targets,
          const std::vector<pid_t>& pids,
          const std::string& tag) -> absl::StatusOr<dtmd::bench::LoadResult> {
    dtmd::bench::LoadOptions o = options;
    o.targets = SplitList(targets);
    o.http_targets = SplitList(http_targets);
    o.target_pids = pids;
    o.gid_prefix = absl::StrCat(prefix, "-", tag);
    return dtmd::bench::RunLoad(o);
  };
  std::string baseline = absl::GetFlag(FLAGS_baseline);
  int baseline_pid = absl::GetFlag(FLAGS_baseline_pid);
  std::string baseline_http = absl::GetFlag(FLAGS_baseline_http);
  if (baseline.empty()) {
    baseline = absl::GetFlag(FLAGS_relay);
    baseline_pid = absl::GetFlag(FLAGS_relay_pid);
    baseline_http = absl::GetFlag(FLAGS_relay_http);
  }
  std::string baseline_name = absl::GetFlag(FLAGS_baseline_name);
  if (baseline_name.empty()) baseline_name = "relay";
  const bool with_relay = !baseline.empty();
  const int rounds = with_relay ? std::max(1, absl::GetFlag(FLAGS_rounds)) : 1;
  std::vector<dtmd::bench::LoadResult> target_runs, relay_runs;
  for (int round = 0; round < rounds; ++round) {
    absl::StatusOr<dtmd::bench::LoadResult> r =
        run(absl::GetFlag(FLAGS_target), absl::GetFlag(FLAGS_http_target),
            *target_pids, absl::StrCat("t", round));
    if (!r.ok()) {
      fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    target_runs.push_back(*std::move(r));
    if (!with_relay) break;
    r = run(baseline, baseline_http,
            baseline_pid > 0 ? std::vector<pid_t>{baseline_pid}
                             : std::vector<pid_t>{},
            absl::StrCat("r", round));
    if (!r.ok()) {
      fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    relay_runs.push_back(*std::move(r));
  }
  const dtmd::bench::LoadResult main_result = dtmd::bench::Combine(target_runs);
  const dtmd::bench::LoadResult relay_result =
      with_relay ? dtmd::bench::Combine(relay_runs) : dtmd::bench::LoadResult();

  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json out = ToJson(main_result);
    out["shape"] = shape->name;
    out["concurrency"] = options.concurrency;
    out["rounds"] = rounds;
    if (with_relay) {
      out["relay"] = ToJson(relay_result);
      out["baseline_name"] = baseline_name;
      out["ratio_tps"] =
          relay_result.tps > 0 ? main_result.tps / relay_result.tps : 0;
      out["ratio_p99"] = relay_result.p99_ms > 0
                             ? main_result.p99_ms / relay_result.p99_ms
                             : 0;
    }
    printf("%s\n", out.dump().c_str());
    return 0;
  }
  printf("shape %s, concurrency %d, %d round(s) of %s\n", shape->name.c_str(),
         options.concurrency, rounds,
         options.count > 0
             ? absl::StrCat(options.count, " transactions").c_str()
             : absl::StrFormat("%.0f s after %.0f s warm-up",
                               options.duration_s, options.warmup_s)
                   .c_str());
  printf("%-7s %10s %8s %8s %8s %8s %8s %9s %9s %8s\n", "", "tps", "p50_ms",
         "p90_ms", "p99_ms", "p999_ms", "max_ms", "errors", "cpu_s/1k",
         "rss_mib");
  printf("%s", Row("target", main_result).c_str());
  if (with_relay) {
    printf("%s", Row(baseline_name, relay_result).c_str());
    printf("target/%s: throughput %.2f, p99 latency %.2f\n",
           baseline_name.c_str(),
           main_result.tps / std::max(relay_result.tps, 1e-9),
           main_result.p99_ms / std::max(relay_result.p99_ms, 1e-9));
  }
  return 0;
}
