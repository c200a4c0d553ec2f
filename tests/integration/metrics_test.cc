// Prometheus metrics of a real dtmd, scraped over plain HTTP and parsed: the
// counters and histograms move as sagas succeed and fail against a real
// branch server, every metric README lists is served (and every one served
// is listed), and with --metrics_port=0 nothing listens besides gRPC.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

using Labels = std::map<std::string, std::string>;

// One sample line of the text format: name{labels} value.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Scrape {
  int http_status = 0;
  std::vector<Sample> samples;
  std::set<std::string> families;  // names from "# TYPE <name> <type>"

  // The sum of the samples named `name` whose labels include `match`.
  double Sum(const std::string& name, const Labels& match = {}) const {
    double sum = 0;
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) ok = false;
      }
      if (ok) sum += s.value;
    }
    return sum;
  }
};

// Parses `{a="x",b="y"}` (prometheus-cpp escapes \\, \" and \n in values).
bool ParseLabels(absl::string_view text, Labels* labels) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() ||
        text[eq + 1] != '"') {
      return false;
    }
    std::string key(text.substr(i, eq - i));
    std::string value;
    size_t j = eq + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) ++j;
      value.push_back(text[j]);
    }
    if (j >= text.size()) return false;
    (*labels)[key] = value;
    i = j + 1;
    if (i < text.size() && text[i] == ',') ++i;
  }
  return true;
}

// Parses the text exposition format; false on a line it cannot read.
bool ParseMetrics(const std::string& body, Scrape* scrape, std::string* bad) {
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      scrape->families.insert(std::string(line.substr(0, line.find(' '))));
      continue;
    }
    if (line[0] == '#') continue;
    Sample sample;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) {
      *bad = std::string(line);
      return false;
    }
    absl::string_view series = line.substr(0, space);
    const absl::string_view value = line.substr(space + 1);
    if (value == "Nan" || value == "NaN") {
      sample.value = 0;
    } else if (!absl::SimpleAtod(value, &sample.value)) {
      *bad = std::string(line);
      return false;
    }
    const size_t brace = series.find('{');
    if (brace == absl::string_view::npos) {
      sample.name = std::string(series);
    } else {
      if (series.back() != '}' ||
          !ParseLabels(series.substr(brace + 1, series.size() - brace - 2),
                       &sample.labels)) {
        *bad = std::string(line);
        return false;
      }
      sample.name = std::string(series.substr(0, brace));
    }
    scrape->samples.push_back(std::move(sample));
  }
  return true;
}

// GET http://127.0.0.1:<port><path> over a plain socket (HTTP/1.0: the
// server closes the connection after the reply).
absl::StatusOr<Scrape> Get(int port, const std::string& path = "/metrics") {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send");
  }
  std::string response;
  char buffer[16384];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("no HTTP reply: ", response));
  }
  Scrape scrape;
  // "HTTP/1.1 200 OK"
  const std::vector<std::string> status_line =
      absl::StrSplit(response.substr(0, response.find("\r\n")), ' ');
  if (status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &scrape.http_status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", response));
  }
  if (scrape.http_status != 200) return scrape;
  std::string bad;
  if (!ParseMetrics(response.substr(head_end + 4), &scrape, &bad)) {
    return absl::DataLossError(absl::StrCat("unparsable line: ", bad));
  }
  return scrape;
}

// TCP ports process `pid` listens on: its socket inodes matched against the
// LISTEN entries of /proc/net/tcp and tcp6.
std::set<int> ListeningPorts(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  if (DIR* dir = opendir(fd_dir.c_str()); dir != nullptr) {
    while (dirent* entry = readdir(dir)) {
      char target[256];
      const std::string link = absl::StrCat(fd_dir, "/", entry->d_name);
      const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      absl::string_view t(target, static_cast<size_t>(n));
      if (absl::ConsumePrefix(&t, "socket:[") && absl::ConsumeSuffix(&t, "]")) {
        inodes.insert(std::string(t));
      }
    }
    closedir(dir);
  }
  std::set<int> ports;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> fields =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      // sl local_address rem_address st ... inode (field 9)
      if (fields.size() < 10 || fields[3] != "0A") continue;  // 0A: LISTEN
      if (inodes.count(fields[9]) == 0) continue;
      const std::string& local = fields[1];
      ports.insert(static_cast<int>(
          std::strtol(local.substr(local.find(':') + 1).c_str(), nullptr, 16)));
    }
  }
  return ports;
}

// The metric names in README's "Metrics" section: the first cell of each
// table row, in backquotes.
std::vector<std::string> ReadmeMetricNames() {
  std::ifstream in(DTMD_SOURCE_DIR "/README.md");
  std::string line;
  bool in_section = false;
  std::vector<std::string> names;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "## ") || absl::StartsWith(line, "### ")) {
      in_section = line == "### Metrics";
    }
    if (!in_section || !absl::StartsWith(line, "| `")) continue;
    const size_t end = line.find('`', 3);
    if (end != std::string::npos) names.push_back(line.substr(3, end - 3));
  }
  return names;
}

class MetricsTest : public SagaFixture {
 protected:
  static void SetUpTestSuite() {
    branches_ = new ScriptedBranchServer();
    ASSERT_TRUE(branches_->Start().ok());
    // The port is picked free, then taken by dtmd: another process may take
    // it in between, so a failed start is retried with another port.
    absl::Status started;
    for (int attempt = 0; attempt < 3; ++attempt) {
      metrics_port_ = FreePort();
      ASSERT_GT(metrics_port_, 0);
      dtmd_ = new DtmdProcess(
          MakeTempDir("metrics"),
          {"--retry_interval=1", "--cron_interval=1", "--max_retry_interval=4",
           // One runner at a time: a second transaction waits, due.
           "--max_active_transactions=1",
           absl::StrCat("--metrics_port=", metrics_port_)});
      started = dtmd_->Start();
      if (started.ok()) return;
      delete dtmd_;
      dtmd_ = nullptr;
    }
    FAIL() << started;
  }

  // Scrapes until `done` holds (counters move once writes complete, just
  // after replies); returns the last scrape.
  static Scrape ScrapeUntil(const std::function<bool(const Scrape&)>& done) {
    Scrape last;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    do {
      absl::StatusOr<Scrape> scrape = Get(metrics_port_);
      if (scrape.ok()) {
        last = *std::move(scrape);
        if (done(last)) break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < deadline);
    return last;
  }

  static int metrics_port_;
};

int MetricsTest::metrics_port_ = 0;

TEST_F(MetricsTest, CountsRequestsTransactionsBranchesAndStoreWrites) {
  absl::StatusOr<Scrape> before = Get(metrics_port_);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->http_status, 200);

  // A saga that succeeds: two actions.
  const std::string ok_gid = NewTestGid();
  ASSERT_TRUE(NewSaga(ok_gid)
                  .Add(Url("Ok1"), Url("UndoOk1"), "a")
                  .Add(Url("Ok2"), Url("UndoOk2"), "b")
                  .SetWaitResult(true)
                  .Submit()
                  .ok());
  // A saga that fails: its second action refuses (ABORTED), so the first
  // is compensated.
  const std::string fail_gid = NewTestGid();
  branches_->SetScript(Method("Refuse"), fail_gid,
                       {{grpc::StatusCode::ABORTED, "FAILURE", 0}});
  const grpc::Status failed = NewSaga(fail_gid)
                                  .Add(Url("Ok1"), Url("UndoOk1"), "a")
                                  .Add(Url("Refuse"), Url("UndoRefuse"), "b")
                                  .SetWaitResult(true)
                                  .Submit();
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::ABORTED)
      << failed.error_message();
  ASSERT_TRUE(
      dtmd_->WaitForStatus(fail_gid, {"failed"}, absl::Seconds(10)).ok());

  const Labels saga = {{"model", "saga"}};
  const Labels saga_ok = {{"model", "saga"}, {"status", "ok"}};
  const Labels saga_fail = {{"model", "saga"}, {"status", "fail"}};
  auto delta = [&](const Scrape& after, const std::string& name,
                   const Labels& labels) {
    return after.Sum(name, labels) - before->Sum(name, labels);
  };
  const Scrape after = ScrapeUntil([&](const Scrape& s) {
    return s.Sum("dtm_transaction_process_total", saga) -
               before->Sum("dtm_transaction_process_total", saga) >=
           2;
  });
  EXPECT_EQ(after.http_status, 200);

  // Transactions: started and finished by type and result.
  EXPECT_EQ(delta(after, "dtmd_transactions_started_total", saga), 2);
  EXPECT_EQ(delta(after, "dtm_transaction_process_total", saga_ok), 1);
  EXPECT_EQ(delta(after, "dtm_transaction_process_total", saga_fail), 1);
  EXPECT_EQ(delta(after, "dtm_transaction_handled_duration_count", saga), 2);
  EXPECT_EQ(delta(after, "dtm_transaction_process_total", {{"model", "tcc"}}),
            0);

  // Branch calls by outcome: three actions succeeded (two, then one), one
  // refused, and at least the first step of the failed saga was
  // compensated.
  const Labels action_success = {{"model", "saga"},
                                 {"branchtype", "action"},
                                 {"outcome", "success"},
                                 {"status", "ok"}};
  const Labels action_failure = {{"model", "saga"},
                                 {"branchtype", "action"},
                                 {"outcome", "failure"},
                                 {"status", "fail"}};
  EXPECT_EQ(delta(after, "dtm_branch_process_total", action_success), 3);
  EXPECT_EQ(delta(after, "dtm_branch_process_total", action_failure), 1);
  EXPECT_GE(delta(after, "dtm_branch_process_total",
                  {{"branchtype", "compensate"}, {"outcome", "success"}}),
            1);
  // Every branch call is in the latency histogram too.
  const double branch_calls = delta(after, "dtm_branch_process_total", {});
  EXPECT_EQ(delta(after, "dtmd_branch_call_duration_seconds_count", {}),
            branch_calls);
  EXPECT_EQ(delta(after, "dtmd_branch_call_duration_seconds_count",
                  {{"branchtype", "action"}, {"outcome", "failure"}}),
            1);
  EXPECT_EQ(
      delta(after, "dtmd_branch_call_duration_seconds_bucket",
            {{"branchtype", "action"}, {"outcome", "failure"}, {"le", "+Inf"}}),
      1);

  // Requests by method and code: one Submit answered OK, one ABORTED; the
  // admin service's GetTransaction (WaitForStatus polls it) is counted too.
  const Labels submit_ok = {
      {"type", "grpc"}, {"api", "submit"}, {"status", "ok"}, {"code", "OK"}};
  const Labels submit_aborted = {{"type", "grpc"},
                                 {"api", "submit"},
                                 {"status", "fail"},
                                 {"code", "ABORTED"}};
  EXPECT_EQ(delta(after, "dtm_server_process_total", submit_ok), 1);
  EXPECT_EQ(delta(after, "dtm_server_process_total", submit_aborted), 1);
  EXPECT_EQ(
      delta(after, "dtm_server_response_duration_count", {{"api", "submit"}}),
      2);
  EXPECT_GE(delta(after, "dtm_server_process_total",
                  {{"api", "gettransaction"}, {"code", "OK"}}),
            1);

  // The store's group-commit writer: batches, fsyncs, bytes.
  EXPECT_GE(delta(after, "dtmd_store_write_duration_seconds_count",
                  {{"stage", "write"}}),
            1);
  EXPECT_GE(delta(after, "dtmd_store_write_duration_seconds_count",
                  {{"stage", "sync"}}),
            1);
  EXPECT_GT(delta(after, "dtmd_store_write_bytes_total", {}), 0);
  EXPECT_GE(delta(after, "dtmd_store_write_ops_total", {}), 4);

  // Sampled gauges: both sagas are over, nothing is due.
  EXPECT_EQ(after.Sum("dtmd_active_transactions"), 0);
  EXPECT_EQ(after.Sum("dtmd_due_transactions"), 0);
  EXPECT_EQ(after.Sum("dtm_server_info"), 1);
}

TEST_F(MetricsTest, GaugesShowActiveAndDueTransactions) {
  // A saga whose action answers UNAVAILABLE after a while, every time: its
  // runner is active during each call, and retried.
  const std::string stuck = NewTestGid();
  branches_->SetScript(Method("Slow"), stuck, {});
  branches_->SetDefault(Method("Slow"),
                        {grpc::StatusCode::UNAVAILABLE, "down", 2500});
  ASSERT_TRUE(
      NewSaga(stuck).Add(Url("Slow"), Url("UndoSlow"), "").Submit().ok());
  ASSERT_TRUE(branches_->WaitForCalls(
      [&](const std::vector<RecordedCall>& calls) {
        for (const RecordedCall& call : calls) {
          if (call.gid == stuck) return true;
        }
        return false;
      },
      absl::Seconds(10)));
  // With --max_active_transactions=1 a second saga submitted meanwhile is
  // stored due at once and waits for the runner to retire.
  const std::string waiting = NewTestGid();
  ASSERT_TRUE(
      NewSaga(waiting).Add(Url("Ok1"), Url("UndoOk1"), "").Submit().ok());
  absl::StatusOr<Scrape> busy = Get(metrics_port_);
  ASSERT_TRUE(busy.ok()) << busy.status();
  EXPECT_EQ(busy->Sum("dtmd_active_transactions"), 1);
  EXPECT_GE(busy->Sum("dtmd_due_transactions"), 1);

  // The slow answer is counted as unknown (retried with backoff).
  const Scrape answered = ScrapeUntil([](const Scrape& s) {
    return s.Sum("dtm_branch_process_total",
                 {{"branchtype", "action"}, {"outcome", "unknown"}}) >= 1;
  });
  EXPECT_GE(answered.Sum("dtm_branch_process_total", {{"branchtype", "action"},
                                                      {"outcome", "unknown"},
                                                      {"status", "fail"}}),
            1);
  ASSERT_TRUE(
      dtmd_->WaitForStatus(waiting, {"succeed"}, absl::Seconds(10)).ok());

  // Stopped, so that it does not run on in later tests: counted as failed.
  const Labels saga_fail = {{"model", "saga"}, {"status", "fail"}};
  const double failed_before =
      answered.Sum("dtm_transaction_process_total", saga_fail);
  grpc::ClientContext context;
  dtmd::admin::v1::ForceStopRequest request;
  request.set_gid(stuck);
  dtmd::admin::v1::ForceStopReply reply;
  ASSERT_TRUE(dtmd_->admin()->ForceStop(&context, request, &reply).ok());
  const Scrape stopped = ScrapeUntil([&](const Scrape& s) {
    return s.Sum("dtm_transaction_process_total", saga_fail) >=
               failed_before + 1 &&
           s.Sum("dtmd_active_transactions") == 0;
  });
  EXPECT_EQ(stopped.Sum("dtm_transaction_process_total", saga_fail),
            failed_before + 1);
  EXPECT_EQ(stopped.Sum("dtmd_active_transactions"), 0);
  EXPECT_EQ(stopped.Sum("dtmd_due_transactions"), 0);
}

TEST_F(MetricsTest, CountsRetryAlertsAndRetentionDeletions) {
  // A dtmd of its own: alerts from the first retry, retention after 1 s.
  std::unique_ptr<DtmdProcess> dtmd;
  int port = 0;
  for (int attempt = 0; attempt < 3 && dtmd == nullptr; ++attempt) {
    port = FreePort();
    auto process = std::make_unique<DtmdProcess>(
        MakeTempDir("metrics-alerts"),
        std::vector<std::string>{"--retry_interval=1", "--cron_interval=1",
                                 "--max_retry_interval=1",
                                 "--alert_retry_limit=1", "--retention=1",
                                 "--retention_compact_interval=0",
                                 absl::StrCat("--metrics_port=", port)});
    if (process->Start().ok()) dtmd = std::move(process);
  }
  ASSERT_NE(dtmd, nullptr);
  // One saga that succeeds (deleted by retention a second later) and one
  // whose action keeps answering UNAVAILABLE (alerts at retries 1, 2, 4).
  const std::string done = NewTestGid();
  dtmd::client::Saga ok(dtmd->dtm(), done);
  ok.Add(Url("Ok1"), Url("UndoOk1"), "").SetWaitResult(true);
  ASSERT_TRUE(ok.Submit().ok());
  const std::string stuck = NewTestGid();
  branches_->SetScript(Method("Down"), stuck, {});
  branches_->SetDefault(Method("Down"),
                        {grpc::StatusCode::UNAVAILABLE, "down", 0});
  dtmd::client::Saga down(dtmd->dtm(), stuck);
  down.Add(Url("Down"), Url("UndoDown"), "");
  ASSERT_TRUE(down.Submit().ok());

  Scrape last;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    absl::StatusOr<Scrape> scrape = Get(port);
    if (scrape.ok()) {
      last = *std::move(scrape);
      if (last.Sum("dtmd_branch_retry_alerts_total") >= 2 &&
          last.Sum("dtmd_retention_deleted_total") >= 1) {
        break;
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(last.Sum("dtmd_branch_retry_alerts_total"), 2);
  EXPECT_EQ(last.Sum("dtmd_retention_deleted_total"), 1);
  EXPECT_EQ(dtmd->GetTransaction(done).status().code(),
            absl::StatusCode::kNotFound);
  grpc::ClientContext context;
  dtmd::admin::v1::ForceStopRequest request;
  request.set_gid(stuck);
  dtmd::admin::v1::ForceStopReply reply;
  EXPECT_TRUE(dtmd->admin()->ForceStop(&context, request, &reply).ok());
  EXPECT_EQ(dtmd->Stop(), 0);
}

TEST_F(MetricsTest, ServesOnlyMetricsPath) {
  absl::StatusOr<Scrape> other = Get(metrics_port_, "/other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->http_status, 404);
}

TEST_F(MetricsTest, EveryMetricInReadmeIsServedAndEveryServedOneIsListed) {
  const std::vector<std::string> listed = ReadmeMetricNames();
  ASSERT_GE(listed.size(), 10u) << "README's Metrics table not found";
  // Label sets made on first use appear once used: make one call of each
  // kind first.
  ASSERT_TRUE(NewSaga(NewTestGid())
                  .Add(Url("Ok1"), Url("UndoOk1"), "")
                  .SetWaitResult(true)
                  .Submit()
                  .ok());
  const Scrape scrape = ScrapeUntil([](const Scrape& s) {
    return s.families.count("dtm_branch_process_total") > 0;
  });
  for (const std::string& name : listed) {
    EXPECT_EQ(scrape.families.count(name), 1u)
        << name << " is in README but not served";
  }
  const std::set<std::string> listed_set(listed.begin(), listed.end());
  for (const std::string& family : scrape.families) {
    if (!absl::StartsWith(family, "dtm")) continue;  // exposer_*: the library's
    EXPECT_EQ(listed_set.count(family), 1u)
        << family << " is served but not listed in README";
  }
}

TEST_F(MetricsTest, ListensOnGrpcAndMetricsPortsOnly) {
  EXPECT_EQ(ListeningPorts(dtmd_->pid()),
            (std::set<int>{dtmd_->port(), metrics_port_}));
}

// Metrics off (--metrics_port=0, DtmdProcess's default): dtmd listens on its
// gRPC port only.
TEST(MetricsOffTest, ZeroPortServesNothing) {
  DtmdProcess dtmd(MakeTempDir("metrics-off"), {});
  ASSERT_TRUE(dtmd.Start().ok());
  EXPECT_EQ(ListeningPorts(dtmd.pid()), std::set<int>{dtmd.port()});
  EXPECT_EQ(dtmd.Stop(), 0);
}

// A metrics port in use stops start-up (exit code 1) instead of running
// without metrics.
TEST(MetricsOffTest, TakenPortStopsStartUp) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  DtmdProcess dtmd(MakeTempDir("metrics-taken"),
                   {absl::StrCat("--metrics_port=", ntohs(addr.sin_port))});
  EXPECT_FALSE(dtmd.Start(absl::Seconds(10)).ok());
  EXPECT_NE(dtmd.exit_code(), 0);
  close(fd);
}

}  // namespace
}  // namespace dtmd::testing
