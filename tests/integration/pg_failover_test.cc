// Failover of dtmd replicas on a shared PostgreSQL: a PostgreSQL 15 started
// for the test (scripts/postgres.sh, loopback only, in a temporary directory)
// with one fresh database, three dtmd replicas on it (--store=postgres,
// short leases) and a ledger branch server that keeps DTM's barrier books and
// records, per call, the replica that sent it (gRPC metadata dtmd-replica)
// and when it arrived and was answered.
//
// A load submits sagas round-robin to the replicas (some scripted to fail so
// that they compensate, some with WaitResult) and runs tcc and msg
// transactions whose commands go to different replicas (a tcc prepared on one,
// its branches registered on the next, submitted or aborted on the third; a
// msg prepared on one and submitted on another): any replica serves any gid.
// The scenarios, each under that load:
//   - kill -9 a random replica every few seconds and restart it, sometimes
//     after its leases expired; at the end one replica stays down while the
//     others finish everything;
//   - SIGSTOP a replica past its lease, right after a burst of transactions
//     sent to it, then SIGCONT it;
//   - cut a replica off from PostgreSQL (a proxy holds its bytes, delivered
//     late when the partition heals) past its lease, after such a burst;
//   - stop PostgreSQL for 10 s: every replica answers UNAVAILABLE in time
//     (no hang, no crash) and serves again by itself once PostgreSQL is back.
// After each: every acknowledged transaction ends as scripted (read through
// the admin service of a replica), the ledger never saw two calls of one
// transaction in flight at once from two replicas (from any replica, for a
// sequential saga) nor an action after its compensation, and no replica
// exited unless the test killed it. And a WaitResult Submit is answered by
// the replica it was sent to.
//
// Environment knobs: DTMD_PG_KILL_SECONDS (length of the kill loop, default
// 24 s, 16 s under the sanitizers), DTMD_KILL_SEED (the scenario's random
// draws; default random, printed), DTMD_PG_LOG_LEVEL (the replicas'
// --log_level; their logs are in the temporary directory the test prints).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "dtmd/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/grpc_probes.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/ledger_modes.h"
#include "tests/integration/ledger_saga.h"
#include "tests/integration/paced_load.h"
#include "tests/integration/test_scale.h"

#ifndef DTMD_SOURCE_DIR
#error "DTMD_SOURCE_DIR must name the source tree (for scripts/postgres.sh)"
#endif

namespace dtmd::testing {
namespace {

using ::dtmd::admin::v1::GetTransactionReply;
using ::dtmgimp::DtmBranchRequest;
using ::dtmgimp::DtmRequest;

constexpr int kReplicas = 3;
// Seconds; short so that failover happens within the test's time.
constexpr int kLeaseTimeoutS = 2;
// Submits sent to a replica right before it is stopped.
constexpr int kStopBurst = 24;
// The replica that reaches PostgreSQL through a proxy (and is cut off).
constexpr int kPartitioned = kReplicas - 1;
constexpr char kDatabase[] = "dtmd_failover";
constexpr char kTryMethod[] = "/ledger.Ledger/Reserve";
constexpr char kConfirmMethod[] = "/ledger.Ledger/Commit";
constexpr char kCancelMethod[] = "/ledger.Ledger/Release";
constexpr char kMsgActionMethod[] = "/ledger.Ledger/Credit";
constexpr char kQueryPreparedMethod[] = "/ledger.Ledger/QueryPrepared";
constexpr int kMsgActions = 2;

std::string ReplicaId(int i) { return absl::StrCat("r", i + 1); }

// The output of `command` (stdout), and whether it exited 0.
bool RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  std::array<char, 512> buffer;
  output->clear();
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    output->append(buffer.data());
  }
  return pclose(pipe) == 0;
}

// The last `lines` lines of a file, for failure messages.
std::string Tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  const size_t from = all.size() > lines ? all.size() - lines : 0;
  return absl::StrJoin(all.begin() + from, all.end(), "\n");
}

// A throwaway PostgreSQL server of scripts/postgres.sh, stopped when
// destroyed.
class PostgresServer {
 public:
  PostgresServer() : dir_(MakeTempDir("pg-failover-db")), port_(FreePort()) {}
  ~PostgresServer() {
    Stop();
    std::string out;
    RunCommand(absl::StrCat("rm -rf '", dir_, "/data'"), &out);
  }

  // Starts the server (initdb on the first start) and, on the first start,
  // creates the test's database. Its DSN in dsn().
  absl::Status Start() {
    std::string out;
    if (!RunCommand(absl::StrCat(kScript, " start '", dir_, "' ", port_),
                    &out)) {
      return absl::UnavailableError(
          absl::StrCat("scripts/postgres.sh start failed: ", out, "\n", dir_,
                       "/server.log:\n", Tail(dir_ + "/server.log", 20)));
    }
    running_ = true;
    if (!dsn_.empty()) return absl::OkStatus();
    StartWatchdog();
    const std::string admin_dsn(absl::StripAsciiWhitespace(out));
    if (!RunCommand(
            absl::StrCat("psql '", admin_dsn, "' -qAt -c 'CREATE DATABASE ",
                         kDatabase, "' 2>&1"),
            &out)) {
      return absl::UnavailableError(
          absl::StrCat("cannot create the database: ", out));
    }
    dsn_ =
        absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", kDatabase);
    return absl::OkStatus();
  }

  void Stop() {
    if (!running_) return;
    std::string out;
    RunCommand(absl::StrCat(kScript, " stop '", dir_, "'"), &out);
    running_ = false;
  }

  const std::string& dsn() const { return dsn_; }
  int port() const { return port_; }
  // The DSN of the test's database through another port (a proxy's).
  std::string DsnVia(int port) const {
    return absl::StrCat("postgresql://postgres@127.0.0.1:", port, "/",
                        kDatabase);
  }
  const std::string& dir() const { return dir_; }

 private:
  // A child that stops the server when this process ends in any way (a
  // crash, a test timeout's kill): it waits for the end of a pipe whose write
  // end only this process holds.
  void StartWatchdog() {
    int fds[2];
    if (pipe(fds) != 0) return;
    std::string stop = absl::StrCat(kScript, " stop '", dir_, "'");
    const char* argv[] = {"/bin/sh", "-c", stop.c_str(), nullptr};
    const pid_t pid = fork();
    if (pid == 0) {
      // Only async-signal-safe calls until exec.
      close(fds[1]);
      char byte;
      while (read(fds[0], &byte, 1) != 0) {
      }
      execv(argv[0], const_cast<char* const*>(argv));
      _exit(127);
    }
    close(fds[0]);
    // Left open (and not inherited by exec'd children) until this process
    // ends.
    if (pid > 0) fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  }

  static constexpr char kScript[] = DTMD_SOURCE_DIR "/scripts/postgres.sh";
  const std::string dir_;
  const int port_;
  std::string dsn_;
  bool running_ = false;
};

// A TCP proxy on loopback in front of PostgreSQL, for one replica's
// connections: Pause() holds every byte in both directions (and new
// connections wait in the backlog), as a network partition does; Resume()
// delivers what was held, late. A connection whose upstream cannot be
// reached (PostgreSQL stopped) is closed.
class TcpProxy {
 public:
  ~TcpProxy() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (Pair& p : pairs_) {
      close(p.fd[0]);
      close(p.fd[1]);
    }
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  // Listens on a port of the OS's choice (returned), forwarding to
  // 127.0.0.1:`upstream_port`.
  absl::StatusOr<int> Start(int upstream_port) {
    upstream_port_ = upstream_port;
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 ||
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0 ||
        listen(listen_fd_, 64) != 0 ||
        fcntl(listen_fd_, F_SETFL, O_NONBLOCK) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
            0) {
      return absl::UnavailableError("proxy: cannot listen");
    }
    thread_ = std::thread([this] { Run(); });
    return ntohs(addr.sin_port);
  }

  void Pause() { paused_ = true; }
  void Resume() { paused_ = false; }

 private:
  // A client connection and its upstream, with the bytes read from each
  // and not yet written to the other.
  struct Pair {
    int fd[2];
    std::string pending[2];  // pending[i]: read from fd[i], for fd[1 - i].
  };

  // A non-blocking connection to the upstream, perhaps still connecting
  // (a failure shows as an error on its first read or write).
  int ConnectUpstream() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ||
        errno == EINPROGRESS) {
      return fd;
    }
    close(fd);
    return -1;
  }

  void Run() {
    while (!stop_) {
      if (paused_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const Pair& p : pairs_) {
        for (int i = 0; i < 2; ++i) {
          short events = p.pending[i].size() < (1 << 20) ? POLLIN : 0;
          if (!p.pending[1 - i].empty()) events |= POLLOUT;
          fds.push_back({p.fd[i], events, 0});
        }
      }
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        // Non-blocking: nothing here may hold the loop up.
        for (int client; (client = accept4(listen_fd_, nullptr, nullptr,
                                           SOCK_NONBLOCK)) >= 0;) {
          const int upstream = ConnectUpstream();
          if (upstream < 0) {
            close(client);
          } else {
            pairs_.push_back({{client, upstream}, {}});
          }
        }
      }
      std::vector<bool> closed(pairs_.size(), false);
      for (size_t k = 0; k < pairs_.size() && 1 + 2 * k < fds.size(); ++k) {
        Pair& p = pairs_[k];
        for (int i = 0; i < 2 && !closed[k]; ++i) {
          const short revents = fds[1 + 2 * k + i].revents;
          if (revents & (POLLIN | POLLHUP | POLLERR)) {
            char buffer[16384];
            const ssize_t n = read(p.fd[i], buffer, sizeof(buffer));
            if (n > 0) {
              p.pending[i].append(buffer, static_cast<size_t>(n));
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
              closed[k] = true;
            }
          }
          if (!closed[k] && !p.pending[1 - i].empty() && (revents & POLLOUT)) {
            const ssize_t n = write(p.fd[i], p.pending[1 - i].data(),
                                    p.pending[1 - i].size());
            if (n > 0) {
              p.pending[1 - i].erase(0, static_cast<size_t>(n));
            } else if (errno != EAGAIN && errno != EINTR) {
              closed[k] = true;
            }
          }
        }
      }
      for (size_t k = pairs_.size(); k-- > 0;) {
        if (!closed[k]) continue;
        close(pairs_[k].fd[0]);
        close(pairs_[k].fd[1]);
        pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
  }

  int listen_fd_ = -1;
  int upstream_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::vector<Pair> pairs_;  // Only the proxy's thread uses it.
  std::thread thread_;
};

// Three dtmd replicas on one PostgreSQL database, and the channels the load
// uses to reach them (replaced at each restart; thread-safe to read).
class Replicas {
 public:
  // Replica i connects with dsns[i].
  explicit Replicas(const std::vector<std::string>& dsns)
      : dir_(MakeTempDir("pg-failover")) {
    for (int i = 0; i < kReplicas; ++i) {
      const std::string& dsn = dsns[i];
      std::vector<std::string> flags = QuickRetryFlags();
      flags.push_back("--store=postgres");
      flags.push_back("--postgres_dsn=" + dsn);
      flags.push_back("--replica_id=" + ReplicaId(i));
      flags.push_back(absl::StrCat("--lease_timeout=", kLeaseTimeoutS));
      // Branch calls end well within a lease (the ledger answers within
      // 30 ms).
      flags.push_back("--request_timeout=1");
      if (const char* level = std::getenv("DTMD_PG_LOG_LEVEL");
          level != nullptr && *level != '\0') {
        flags.push_back(absl::StrCat("--log_level=", level));
      }
      const std::string data_dir = absl::StrCat(dir_, "/", ReplicaId(i));
      processes_.push_back(std::make_unique<DtmdProcess>(data_dir, flags));
      processes_.back()->set_stderr_file(Log(i));
    }
    channels_.resize(kReplicas);
    up_.resize(kReplicas, false);
  }

  std::string Log(int i) const {
    return absl::StrCat(dir_, "/", ReplicaId(i), ".log");
  }
  DtmdProcess& process(int i) { return *processes_[i]; }

  absl::Status Start(int i) {
    absl::Status s = processes_[i]->Start(20 * Slowness());
    if (!s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat(ReplicaId(i), ": ", s.message(), "\n", Log(i),
                                 ":\n", Tail(Log(i), 30)));
    }
    up_[i] = true;
    absl::MutexLock lock(&mu_);
    channels_[i] = processes_[i]->channel();
    return absl::OkStatus();
  }

  // kill -9; the replica is down until Start(i).
  void Kill(int i) {
    up_[i] = false;
    processes_[i]->Kill();
  }

  std::shared_ptr<grpc::Channel> Channel(int i) const {
    absl::MutexLock lock(&mu_);
    return channels_[i];
  }

  // A replica that is up, for admin reads (-1: none).
  int AnyUp() const {
    for (int i = 0; i < kReplicas; ++i) {
      if (up_[i]) return i;
    }
    return -1;
  }

  // One line per replica that should run but exited (the test did not kill
  // it), with its exit code and its log's end; each such replica is started
  // again so that the test can go on.
  std::vector<std::string> CollectUnexpectedExits() {
    std::vector<std::string> out;
    for (int i = 0; i < kReplicas; ++i) {
      if (!up_[i] || processes_[i]->Running()) continue;
      up_[i] = false;
      out.push_back(absl::StrCat(ReplicaId(i), " exited on its own, code ",
                                 processes_[i]->exit_code(), "; ", Log(i),
                                 " ends:\n", Tail(Log(i), 30)));
      if (absl::Status s = Start(i); !s.ok()) {
        out.push_back(absl::StrCat("and cannot restart: ", s.ToString()));
      }
    }
    return out;
  }

  // SIGTERM for every replica that is up; one line per exit code not 0.
  std::vector<std::string> StopAll() {
    std::vector<std::string> out;
    for (int i = 0; i < kReplicas; ++i) {
      if (!up_[i]) continue;
      up_[i] = false;
      const int code = processes_[i]->Stop();
      if (code != 0) {
        out.push_back(absl::StrCat(ReplicaId(i), " ended with code ", code,
                                   " on SIGTERM; ", Log(i), " ends:\n",
                                   Tail(Log(i), 30)));
      }
    }
    return out;
  }

  bool up(int i) const { return up_[i]; }

 private:
  const std::string dir_;
  std::vector<std::unique_ptr<DtmdProcess>> processes_;
  std::vector<bool> up_;  // Only the test thread reads and writes it.
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

// A call of a Dtm method on replica `replica` with deadline `timeout`.
template <typename Request, typename Reply>
grpc::Status CallDtm(const Replicas& replicas, int replica,
                     absl::Duration timeout,
                     grpc::Status (dtmgimp::Dtm::Stub::*method)(
                         grpc::ClientContext*, const Request&, Reply*),
                     const Request& request, Reply* reply) {
  std::unique_ptr<dtmgimp::Dtm::Stub> stub =
      dtmgimp::Dtm::NewStub(replicas.Channel(replica));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(timeout));
  return (stub.get()->*method)(&context, request, reply);
}

grpc::Status Command(const Replicas& replicas, int replica,
                     absl::Duration timeout,
                     grpc::Status (dtmgimp::Dtm::Stub::*method)(
                         grpc::ClientContext*, const DtmRequest&,
                         google::protobuf::Empty*),
                     const DtmRequest& request) {
  google::protobuf::Empty reply;
  return CallDtm(replicas, replica, timeout, method, request, &reply);
}

DtmRequest TccRequest(const std::string& gid) {
  DtmRequest r;
  r.set_gid(gid);
  r.set_transtype("tcc");
  r.set_steps("null");
  return r;
}

std::string BranchId(int i) { return absl::StrFormat("%02d", i + 1); }

// A tcc whose commands go to three replicas: Prepare on `first`,
// RegisterBranch on the next, Submit (or, when `abort`, Abort after a refused
// try) on the one after. Booked as ledger_modes.h's audit expects.
ModeTxn RunCrossTcc(const Replicas& replicas, LedgerBranchServer* ledger,
                    const std::string& gid, bool abort, int first, int branches,
                    absl::Duration timeout, bool wait_result,
                    grpc::Status* closing_status = nullptr) {
  ModeTxn txn;
  txn.script = abort ? ModeScript::kTccAbort : ModeScript::kTccConfirm;
  txn.branches = branches;
  DtmRequest prepare = TccRequest(gid);
  prepare.mutable_transoptions()->set_timeouttofail(kTccGraceS);
  if (!Command(replicas, first % kReplicas, timeout,
               &dtmgimp::Dtm::Stub::Prepare, prepare)
           .ok()) {
    return txn;
  }
  txn.begun = true;
  bool tried_all = true;
  for (int i = 0; i < branches && tried_all; ++i) {
    DtmBranchRequest branch;
    branch.set_gid(gid);
    branch.set_transtype("tcc");
    branch.set_branchid(BranchId(i));
    branch.set_busipayload(absl::StrCat("tcc-", i));
    (*branch.mutable_data())["confirm"] = ledger->Url(kConfirmMethod);
    (*branch.mutable_data())["cancel"] = ledger->Url(kCancelMethod);
    google::protobuf::Empty reply;
    if (!CallDtm(replicas, (first + 1) % kReplicas, timeout,
                 &dtmgimp::Dtm::Stub::RegisterBranch, branch, &reply)
             .ok()) {
      return txn;  // The timeout ends it.
    }
    txn.registered.push_back(BranchId(i));
    const bool refuse = abort && i == branches - 1;
    tried_all =
        ledger
            ->Try(kTryMethod, gid, BranchId(i),
                  refuse
                      ? LedgerBranchServer::FailingPayload(kInsufficientBalance)
                      : absl::StrCat("try-", i))
            .ok();
  }
  DtmRequest closing = TccRequest(gid);
  closing.mutable_transoptions()->set_waitresult(wait_result);
  grpc::Status status;
  if (tried_all) {
    txn.closing = "Submit";
    status = Command(replicas, (first + 2) % kReplicas, timeout,
                     &dtmgimp::Dtm::Stub::Submit, closing);
  } else {
    txn.closing = "Abort";
    closing.set_rollbackreason(kInsufficientBalance);
    status = Command(replicas, (first + 2) % kReplicas, timeout,
                     &dtmgimp::Dtm::Stub::Abort, closing);
  }
  txn.closing_code = status.error_code();
  txn.completed = status.ok() && tried_all == !abort;
  if (closing_status != nullptr) *closing_status = status;
  return txn;
}

// A msg prepared on `first` and submitted on the replica before it, or, with
// `left_prepared`, never submitted: the QueryPrepared check (committed)
// decides, on whichever replica finds it due.
ModeTxn RunCrossMsg(const Replicas& replicas, LedgerBranchServer* ledger,
                    const std::string& gid, bool left_prepared, int first,
                    absl::Duration timeout) {
  ModeTxn txn;
  txn.script =
      left_prepared ? ModeScript::kMsgCommitted : ModeScript::kMsgSubmit;
  txn.branches = kMsgActions;
  DtmRequest msg;
  msg.set_gid(gid);
  msg.set_transtype("msg");
  std::string steps = "[";
  for (int i = 0; i < kMsgActions; ++i) {
    absl::StrAppend(&steps, i == 0 ? "" : ",", "{\"action\":\"",
                    ledger->Url(kMsgActionMethod), "\"}");
    msg.add_binpayloads(absl::StrCat("credit-", i));
  }
  msg.set_steps(steps + "]");
  msg.set_queryprepared(ledger->Url(kQueryPreparedMethod));
  msg.mutable_transoptions()->set_timeouttofail(1);
  if (!Command(replicas, first % kReplicas, timeout,
               &dtmgimp::Dtm::Stub::Prepare, msg)
           .ok()) {
    return txn;
  }
  txn.begun = true;
  if (left_prepared) {
    txn.completed = true;
    return txn;
  }
  txn.closing = "Submit";
  txn.closing_code = Command(replicas, (first + kReplicas - 1) % kReplicas,
                             timeout, &dtmgimp::Dtm::Stub::Submit, msg)
                         .error_code();
  txn.completed = txn.closing_code == grpc::StatusCode::OK;
  return txn;
}

// What a scenario's load did: sagas and other transactions by gid, and the
// problems seen in answers (a WaitResult answer that contradicts the
// script).
struct LoadBooks {
  SagaBook sagas;
  // Sequential sagas: no two of their calls may overlap, from any replica.
  absl::Mutex mu;
  std::set<std::string> sequential ABSL_GUARDED_BY(mu);
  std::vector<std::string> problems ABSL_GUARDED_BY(mu);
  ModeBook modes;
};

// Submits saga `gid` of `shape` to `replica` and books it in `books`:
// whether the replica acknowledged it (stored it).
bool SubmitSaga(const Replicas& replicas, const LedgerBranchServer& ledger,
                LoadBooks* books, const std::string& gid,
                const SagaShape& shape, int replica, bool wait_result,
                absl::Duration timeout) {
  std::unique_ptr<dtmgimp::Dtm::Stub> stub =
      dtmgimp::Dtm::NewStub(replicas.Channel(replica));
  dtmd::client::Saga saga = BuildSaga(stub.get(), gid, shape, ledger);
  saga.SetWaitResult(wait_result);
  // A WaitResult call covers the wait of its first round.
  saga.SetCallTimeout(std::chrono::milliseconds(
      absl::ToInt64Milliseconds(wait_result ? 2 * timeout : timeout)));
  if (!shape.concurrent) {
    absl::MutexLock lock(&books->mu);
    books->sequential.insert(gid);
  }
  const grpc::Status status = saga.Submit();
  // WaitResult: ABORTED (failed) and FAILED_PRECONDITION (still running)
  // are answers about a stored saga too.
  const bool stored =
      status.ok() ||
      (wait_result &&
       (status.error_code() == grpc::StatusCode::ABORTED ||
        status.error_code() == grpc::StatusCode::FAILED_PRECONDITION));
  if (wait_result && ((status.ok() && shape.ShouldFail()) ||
                      (status.error_code() == grpc::StatusCode::ABORTED &&
                       !shape.ShouldFail()))) {
    absl::MutexLock lock(&books->mu);
    books->problems.push_back(absl::StrCat(
        gid, ": WaitResult Submit on ", ReplicaId(replica), " answered ",
        status.error_code(), " '", status.error_message(),
        "', scripted to end ", shape.ExpectedStatus()));
  }
  books->sagas.Submitted(gid, shape, stored);
  return stored;
}

// The scenarios' load: job n is a saga (MixedShape(n); every other one with
// WaitResult) submitted to replica n % 3, or for n % 10 == 7 a cross-replica
// tcc, for n % 10 == 8 a cross-replica msg.
class FailoverLoad {
 public:
  FailoverLoad(const Replicas& replicas, LedgerBranchServer* ledger,
               LoadBooks* books, const std::string& prefix)
      : replicas_(replicas),
        ledger_(ledger),
        books_(books),
        prefix_(prefix),
        load_(Options(prefix), [this](int n) { return Job(n); }) {}

  void Stop() { load_.Stop(); }
  int acked() const { return load_.acked(); }
  int started() const { return load_.started(); }

 private:
  static LoadOptions Options(const std::string& prefix) {
    LoadOptions options;
    // A stopped replica holds its callers until their deadline: enough
    // threads for the others to keep busy.
    options.threads = kSanitizedBuild ? 4 : 6;
    options.burst = 3;
    options.pause_ms = kSanitizedBuild ? 200 : 80;
    options.gid_prefix = prefix;
    options.call_timeout = 3 * Slowness();
    return options;
  }

  bool Job(int n) {
    const std::string gid = absl::StrCat(prefix_, "-", n);
    const absl::Duration timeout = 3 * Slowness();
    if (n % 10 == 7) {
      const ModeTxn txn =
          RunCrossTcc(replicas_, ledger_, gid, /*abort=*/n % 20 == 17, n,
                      2 + n % 2, timeout, /*wait_result=*/false);
      books_->modes.Record(gid, txn);
      return txn.completed;
    }
    if (n % 10 == 8) {
      const ModeTxn txn =
          RunCrossMsg(replicas_, ledger_, gid,
                      /*left_prepared=*/n % 30 == 28, n + 1, timeout);
      books_->modes.Record(gid, txn);
      return txn.completed;
    }
    return SubmitSaga(replicas_, *ledger_, books_, gid, MixedShape(n),
                      n % kReplicas, /*wait_result=*/n % 2 == 1, timeout);
  }

  const Replicas& replicas_;
  LedgerBranchServer* const ledger_;
  LoadBooks* const books_;
  const std::string prefix_;
  // Last: its threads stop before what they use goes.
  PacedLoad load_;
};

// What the final record of a sequential saga says of its branches, against
// its script: a succeeded saga's actions all succeeded; a failed one's
// failing action failed and no later action succeeded (a replica that wrote
// progress it should not have, e.g. after losing the transaction, shows
// here). One line per problem.
std::vector<std::string> AuditBranchRecords(const std::string& gid,
                                            const SagaShape& shape,
                                            const GetTransactionReply& reply) {
  std::vector<std::string> out;
  const std::string& status = reply.transaction().status();
  for (const auto& b : reply.branches()) {
    if (b.op() != "action") continue;
    const int step = std::atoi(b.branch_id().c_str()) - 1;
    std::string want;
    if (status == "succeed") {
      want = "succeed";
    } else if (status == "failed" && step == shape.fail_step) {
      want = "failed";
    } else if (status == "failed" && step > shape.fail_step &&
               b.status() == "succeed") {
      want = "not succeed";
    }
    if (!want.empty() && b.status() != want) {
      out.push_back(absl::StrCat(gid, ": ", status, ", but the record of the ",
                                 "action of branch ", b.branch_id(), " says ",
                                 b.status(), ", want ", want));
    }
  }
  return out;
}

// Every call the ledger booked for `gid`, one per line, for a failure's
// message.
std::string DescribeCalls(const LedgerBranchServer& ledger,
                          const std::string& gid) {
  std::string out = absl::StrCat(gid, " at the ledger:");
  for (const LedgerEntry& e : ledger.EntriesFor(gid)) {
    absl::StrAppend(&out, "\n  #", e.seq, " ", e.op, " ", e.branch_id, " from ",
                    e.replica.empty() ? "(client)" : e.replica, ": ",
                    LedgerEffectName(e.effect), ", code ",
                    static_cast<int>(e.code), ", in flight ", e.arrived, "..",
                    e.replied);
  }
  return out;
}

// The calls of the first gids named by `problems` (lines that start with a
// gid), for a failure's message.
std::string DescribeProblemGids(const LedgerBranchServer& ledger,
                                const std::vector<std::string>& problems) {
  std::set<std::string> gids;
  for (const std::string& line : problems) {
    const size_t end = line.find_first_of(": ");
    if (end != std::string::npos) gids.insert(line.substr(0, end));
    if (gids.size() >= 4) break;
  }
  std::string out;
  for (const std::string& gid : gids) {
    absl::StrAppend(&out, "\n", DescribeCalls(ledger, gid));
  }
  return out;
}

uint32_t Seed() {
  static const uint32_t seed = [] {
    const uint32_t s = static_cast<uint32_t>(
        EnvInt("DTMD_KILL_SEED", static_cast<int>(std::random_device()())));
    std::cout << "pg_failover_test: DTMD_KILL_SEED=" << s << std::endl;
    return s;
  }();
  return seed;
}

// The PostgreSQL server, the replicas and the ledger, shared by the tests
// (in the order they are written: each leaves every replica running).
class PgFailoverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    postgres_ = new PostgresServer();
    setup_ = postgres_->Start();
    if (!setup_.ok()) return;
    std::cout << "PostgreSQL in " << postgres_->dir() << ", "
              << postgres_->dsn() << std::endl;
    LedgerBranchServer::Options options;
    options.delays.action_max_ms = 30;
    options.delays.compensate_max_ms = 30;
    options.seed = Seed();
    ledger_ = new LedgerBranchServer(options);
    if (absl::StatusOr<int> port = ledger_->Start(); !port.ok()) {
      setup_ = port.status();
      return;
    }
    // The last replica reaches PostgreSQL through a proxy, which the
    // partition scenario cuts.
    proxy_ = new TcpProxy();
    absl::StatusOr<int> proxy_port = proxy_->Start(postgres_->port());
    if (!proxy_port.ok()) {
      setup_ = proxy_port.status();
      return;
    }
    std::vector<std::string> dsns(kReplicas, postgres_->dsn());
    dsns[kPartitioned] = postgres_->DsnVia(*proxy_port);
    replicas_ = new Replicas(dsns);
    std::cout << "replica logs: " << replicas_->Log(0) << " ..." << std::endl;
    for (int i = 0; i < kReplicas && setup_.ok(); ++i) {
      setup_ = replicas_->Start(i);
    }
  }

  static void TearDownTestSuite() {
    if (replicas_ != nullptr) {
      const std::vector<std::string> bad = replicas_->StopAll();
      EXPECT_TRUE(bad.empty()) << absl::StrJoin(bad, "\n");
    }
    delete replicas_;
    replicas_ = nullptr;
    delete ledger_;
    ledger_ = nullptr;
    delete proxy_;
    proxy_ = nullptr;
    delete postgres_;  // Stops PostgreSQL.
    postgres_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(setup_.ok()) << "set-up failed: " << setup_;
    random_.seed(
        Seed() + ::testing::UnitTest::GetInstance()->random_seed() +
        static_cast<uint32_t>(std::hash<std::string>()(
            ::testing::UnitTest::GetInstance()->current_test_info()->name())));
    proxy_->Resume();  // A failed test may have left it cut.
    // A replica a failed test left down.
    for (int i = 0; i < kReplicas; ++i) {
      if (replicas_->up(i)) continue;
      const absl::Status started = replicas_->Start(i);
      ASSERT_TRUE(started.ok()) << started;
    }
  }

  int Uniform(int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(random_);
  }

  static void Sleep(absl::Duration d) {
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(d));
  }

  // Expects no replica to have exited on its own since the last call.
  static void ExpectNoUnexpectedExit(const std::string& when) {
    const std::vector<std::string> exits = replicas_->CollectUnexpectedExits();
    EXPECT_TRUE(exits.empty()) << when << ":\n" << absl::StrJoin(exits, "\n");
  }

  // Expects replica `i` to say SERVING again and to run a new saga (`gid`,
  // WaitResult) to its end, within 30 s of `since`, without a restart.
  static void ExpectServesAgain(int i, absl::Time since, LoadBooks* books,
                                const std::string& gid) {
    const absl::Time until = since + 30 * Slowness();
    bool serving = false;
    grpc::Status last;
    while (absl::Now() < until) {
      absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
          health = CheckHealth(replicas_->Channel(i));
      serving = health.ok() &&
                *health == grpc::health::v1::HealthCheckResponse::SERVING;
      if (serving) {
        std::unique_ptr<dtmgimp::Dtm::Stub> stub =
            dtmgimp::Dtm::NewStub(replicas_->Channel(i));
        dtmd::client::Saga saga =
            BuildSaga(stub.get(), gid, SagaShape(), *ledger_);
        saga.SetWaitResult(true);
        saga.SetCallTimeout(std::chrono::milliseconds(
            absl::ToInt64Milliseconds(10 * Slowness())));
        last = saga.Submit();
        if (last.ok()) break;
      }
      Sleep(absl::Milliseconds(200));
    }
    EXPECT_TRUE(serving) << ReplicaId(i) << " not SERVING again";
    EXPECT_TRUE(last.ok()) << ReplicaId(i)
                           << ": a new saga: " << last.error_code() << " "
                           << last.error_message();
    std::cout << ReplicaId(i) << " serves again "
              << absl::FormatDuration(absl::Now() - since) << " after"
              << std::endl;
    books->sagas.Submitted(gid, SagaShape(), last.ok());
  }

  // The time between two transactions of a burst: a millisecond, scaled
  // for the build.
  static int64_t StaggerUs() {
    return absl::ToInt64Microseconds(Slowness()) / 1000;
  }

  // A burst of kStopBurst transactions sent to `victim`, one every
  // StaggerUs(), so that a failure that lands StaggerUs() * kStopBurst / 4
  // or more later finds them at every stage, some with their record being
  // written (PostgreSQL got the insert, the replica has not seen the
  // commit). Mostly sagas; some tcc and msg whose closing command goes to
  // the victim. Returns the threads, to be joined.
  static std::vector<std::thread> StartBurst(LoadBooks* books, int victim,
                                             const std::string& prefix) {
    std::vector<std::thread> burst;
    for (int k = 0; k < kStopBurst; ++k) {
      burst.emplace_back([books, victim, prefix, k] {
        std::this_thread::sleep_for(std::chrono::microseconds(k * StaggerUs()));
        const std::string gid = absl::StrCat(prefix, "-", k);
        const int before_victim = (victim + 1) % kReplicas;
        if (k % 6 == 5) {
          books->modes.Record(
              gid, RunCrossTcc(*replicas_, ledger_, gid, /*abort=*/k % 12 == 11,
                               before_victim, 2, 3 * Slowness(),
                               /*wait_result=*/false));
        } else if (k % 6 == 2) {
          books->modes.Record(gid, RunCrossMsg(*replicas_, ledger_, gid,
                                               /*left_prepared=*/false,
                                               before_victim, 3 * Slowness()));
        } else {
          SubmitSaga(*replicas_, *ledger_, books, gid, MixedShape(k), victim,
                     /*wait_result=*/false, 3 * Slowness());
        }
      });
    }
    return burst;
  }

  // The end of a scenario, with the load stopped: every transaction of
  // `books` ends as scripted within `timeout`, read on replica `reader`; the
  // ledger saw no overlapping calls and no action after its compensation
  // for any of them; no replica exited on its own.
  // Returns how many transactions had branch calls from more than one
  // replica (taken over, or a command's replica driving it).
  static int AuditScenario(LoadBooks* books, int reader,
                           absl::Duration timeout) {
    ExpectNoUnexpectedExit("after the scenario");
    const DtmdProcess& dtmd = replicas_->process(reader);
    const std::map<std::string, SagaShape> acked = books->sagas.Acked();
    const std::map<std::string, SagaShape> unacked = books->sagas.Unacked();
    const std::map<std::string, ModeTxn> modes = books->modes.All();
    std::cout << acked.size() << " sagas acknowledged, " << unacked.size()
              << " not; " << modes.size() << " tcc/msg; read on "
              << ReplicaId(reader) << std::endl;
    EXPECT_GT(acked.size(), 0u) << "the load got nothing acknowledged";
    const std::vector<std::string> saga_problems =
        FinishAndAudit(dtmd, *ledger_, acked, /*must_exist=*/true, timeout);
    EXPECT_TRUE(saga_problems.empty())
        << saga_problems.size() << " problems with acknowledged sagas:\n"
        << SummarizeProblems(saga_problems)
        << DescribeProblemGids(*ledger_, saga_problems);
    const std::vector<std::string> unacked_problems = FinishAndAudit(
        dtmd, *ledger_, unacked, /*must_exist=*/false, timeout / 2);
    EXPECT_TRUE(unacked_problems.empty())
        << unacked_problems.size()
        << " problems with unacknowledged sagas dtmd stored:\n"
        << SummarizeProblems(unacked_problems)
        << DescribeProblemGids(*ledger_, unacked_problems);
    // The branch records of the final sequential sagas.
    std::vector<std::string> record_problems;
    for (const auto* sagas : {&acked, &unacked}) {
      for (const auto& [gid, shape] : *sagas) {
        if (shape.concurrent) continue;
        absl::StatusOr<GetTransactionReply> reply = dtmd.GetTransaction(gid);
        if (!reply.ok()) continue;  // Reported above if it matters.
        const std::vector<std::string> found =
            AuditBranchRecords(gid, shape, *reply);
        record_problems.insert(record_problems.end(), found.begin(),
                               found.end());
      }
    }
    EXPECT_TRUE(record_problems.empty())
        << record_problems.size() << " problems in final records:\n"
        << SummarizeProblems(record_problems)
        << DescribeProblemGids(*ledger_, record_problems);
    std::map<std::string, int> tally;
    const std::vector<std::string> mode_problems = FinishAndAuditModes(
        dtmd, *ledger_, modes, /*resumed_since=*/0, timeout, &tally);
    EXPECT_TRUE(mode_problems.empty())
        << mode_problems.size() << " problems with tcc and msg:\n"
        << SummarizeProblems(mode_problems)
        << DescribeProblemGids(*ledger_, mode_problems);
    for (const auto& [end, count] : tally) {
      std::cout << "  " << end << ": " << count << std::endl;
    }
    std::vector<std::string> ledger_problems;
    std::set<std::string> sequential;
    {
      absl::MutexLock lock(&books->mu);
      sequential = books->sequential;
      EXPECT_TRUE(books->problems.empty())
          << SummarizeProblems(books->problems);
    }
    std::set<std::string> gids;
    for (const auto& [gid, shape] : acked) gids.insert(gid);
    for (const auto& [gid, shape] : unacked) gids.insert(gid);
    for (const auto& [gid, txn] : modes) gids.insert(gid);
    int64_t calls = 0;
    int shared = 0;
    std::map<std::string, int> by_replica;
    for (const std::string& gid : gids) {
      const std::vector<LedgerEntry> entries = ledger_->EntriesFor(gid);
      calls += static_cast<int64_t>(entries.size());
      std::set<std::string> senders;
      for (const LedgerEntry& e : entries) {
        ++by_replica[e.replica.empty() ? "(client)" : e.replica];
        if (!e.replica.empty()) senders.insert(e.replica);
        if (IsViolation(e.effect)) {
          ledger_problems.push_back(absl::StrCat(
              gid, " branch ", e.branch_id, " from ", e.replica, ": ",
              LedgerEffectName(e.effect), " (#", e.seq, ")"));
        }
      }
      if (senders.size() > 1) ++shared;
      const std::vector<std::string> overlaps =
          OverlappingCalls(entries, sequential.count(gid) > 0);
      ledger_problems.insert(ledger_problems.end(), overlaps.begin(),
                             overlaps.end());
    }
    EXPECT_TRUE(ledger_problems.empty())
        << ledger_problems.size() << " problems in the ledger:\n"
        << SummarizeProblems(ledger_problems)
        << DescribeProblemGids(*ledger_, ledger_problems);
    std::cout << calls << " branch calls, by sender:";
    for (const auto& [replica, count] : by_replica) {
      std::cout << " " << replica << "=" << count;
    }
    std::cout << "; " << shared
              << " transactions had calls from two replicas or more"
              << std::endl;
    // Every replica drove some transaction (the dtmd-replica metadata).
    for (int i = 0; i < kReplicas; ++i) {
      EXPECT_GT(by_replica[ReplicaId(i)], 0)
          << ReplicaId(i) << " sent no branch call with dtmd-replica";
    }
    ExpectNoUnexpectedExit("after the audit");
    return shared;
  }

  static PostgresServer* postgres_;
  static TcpProxy* proxy_;
  static LedgerBranchServer* ledger_;
  static Replicas* replicas_;
  static absl::Status setup_;
  std::mt19937 random_;
};

PostgresServer* PgFailoverTest::postgres_ = nullptr;
TcpProxy* PgFailoverTest::proxy_ = nullptr;
LedgerBranchServer* PgFailoverTest::ledger_ = nullptr;
Replicas* PgFailoverTest::replicas_ = nullptr;
absl::Status PgFailoverTest::setup_;

// A WaitResult Submit is answered by the replica it was sent to, whichever
// replica drives the transaction: a saga on each replica (one that succeeds,
// one that fails), and a tcc prepared on r1, registered on r2 and submitted
// with WaitResult on r3.
TEST_F(PgFailoverTest, WaitResultIsAnsweredByTheReplicaCalled) {
  for (int i = 0; i < kReplicas; ++i) {
    std::unique_ptr<dtmgimp::Dtm::Stub> stub =
        dtmgimp::Dtm::NewStub(replicas_->Channel(i));
    for (const bool fail : {false, true}) {
      SagaShape shape;
      if (fail) shape.fail_step = 1;
      const std::string gid =
          absl::StrCat("wait-", ReplicaId(i), fail ? "-fail" : "-ok");
      dtmd::client::Saga saga = BuildSaga(stub.get(), gid, shape, *ledger_);
      saga.SetWaitResult(true);
      saga.SetCallTimeout(std::chrono::milliseconds(
          absl::ToInt64Milliseconds(10 * Slowness())));
      const grpc::Status status = saga.Submit();
      if (fail) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED)
            << gid << ": " << status.error_message();
        EXPECT_THAT(status.error_message(),
                    ::testing::HasSubstr(kInsufficientBalance));
      } else {
        EXPECT_TRUE(status.ok()) << gid << ": " << status.error_code() << " "
                                 << status.error_message();
      }
      absl::StatusOr<GetTransactionReply> reply =
          replicas_->process((i + 1) % kReplicas)
              .WaitForFinal(gid, absl::Now() + 10 * Slowness());
      ASSERT_TRUE(reply.ok()) << reply.status();
      EXPECT_EQ(reply->transaction().status(), shape.ExpectedStatus());
    }
  }
  grpc::Status closing;
  const ModeTxn txn =
      RunCrossTcc(*replicas_, ledger_, "wait-tcc",
                  /*abort=*/false, /*first=*/0, 2, 10 * Slowness(),
                  /*wait_result=*/true, &closing);
  EXPECT_TRUE(txn.begun);
  EXPECT_EQ(txn.registered.size(), 2u);
  EXPECT_TRUE(closing.ok())
      << "WaitResult Submit of a tcc on r3: " << closing.error_code() << " "
      << closing.error_message();
  absl::StatusOr<GetTransactionReply> reply =
      replicas_->process(0).GetTransaction("wait-tcc");
  ASSERT_TRUE(reply.ok()) << reply.status();
  // WaitResult OK: the confirms are done when the answer comes.
  EXPECT_EQ(reply->transaction().status(), "succeed");
  ExpectNoUnexpectedExit("after the WaitResult checks");
}

// kill -9 a random replica every few seconds under load and start it again,
// sometimes at once (it may take its own leases back), sometimes after its
// leases expired (the others take its transactions over). At the end one
// replica stays down while the other two finish everything.
TEST_F(PgFailoverTest, KillNineLoop) {
  const absl::Duration length =
      absl::Seconds(EnvInt("DTMD_PG_KILL_SECONDS", kSanitizedBuild ? 16 : 24));
  LoadBooks books;
  FailoverLoad load(*replicas_, ledger_, &books, "kill");
  const absl::Time end = absl::Now() + length;
  int cycle = 0;
  while (absl::Now() < end) {
    Sleep(absl::Milliseconds(Uniform(1000, 2500)));
    ExpectNoUnexpectedExit(absl::StrCat("before kill ", cycle));
    const int victim = Uniform(0, kReplicas - 1);
    // Half the kills land as the victim sends a compensate or an action
    // (before it can see the answer), the others at a random moment.
    std::string moment = "random moment";
    if (cycle % 2 == 1) {
      const pid_t pid = replicas_->process(victim).pid();
      const std::string op = cycle % 4 == 1 ? "compensate" : "action";
      const std::string id = ReplicaId(victim);
      absl::Notification fired;
      auto armed = std::make_shared<std::atomic<bool>>(true);
      ledger_->SetArrivalHook([&, armed](const LedgerEntry& e) {
        if (e.replica == id && e.op == op && armed->exchange(false)) {
          kill(pid, SIGKILL);
          fired.Notify();
        }
      });
      moment = fired.WaitForNotificationWithTimeout(3 * Slowness())
                   ? absl::StrCat("at its ", op)
                   : absl::StrCat("no ", op, " in time");
      armed->store(false);
      ledger_->SetArrivalHook(nullptr);
    }
    replicas_->Kill(victim);
    const int down_ms = Uniform(100, 2 * kLeaseTimeoutS * 1000);
    std::cout << "kill " << cycle << ": " << ReplicaId(victim) << " (" << moment
              << "), down " << down_ms << " ms, " << load.acked() << " acked"
              << std::endl;
    Sleep(absl::Milliseconds(down_ms));
    const absl::Status started = replicas_->Start(victim);
    ASSERT_TRUE(started.ok()) << started;
    ++cycle;
  }
  // The last kill: this one stays down through the audit.
  const int last = Uniform(0, kReplicas - 1);
  replicas_->Kill(last);
  Sleep(absl::Seconds(1));
  load.Stop();
  std::cout << ReplicaId(last) << " killed and left down for the audit; "
            << load.started() << " jobs, " << load.acked() << " acked"
            << std::endl;
  const int shared =
      AuditScenario(&books, (last + 1) % kReplicas, 30 * Slowness());
  // The kills landed on transactions in flight, which others finished.
  EXPECT_GT(shared, 0) << "no transaction was taken over";
  ASSERT_TRUE(replicas_->Start(last).ok());
}

// SIGSTOP a replica under load, amid a burst of Submits sent to it, for twice
// its lease (its transactions are taken over by the others; once resumed it
// must not call a branch of a transaction it lost, nor overwrite the new
// owner's progress), then SIGCONT; each replica once.
TEST_F(PgFailoverTest, StopPastTheLease) {
  LoadBooks books;
  FailoverLoad load(*replicas_, ledger_, &books, "stop");
  Sleep(absl::Seconds(2));
  const int first = Uniform(0, kReplicas - 1);
  for (int i = 0; i < kReplicas; ++i) {
    const int victim = (first + i) % kReplicas;
    const pid_t pid = replicas_->process(victim).pid();
    ASSERT_GT(pid, 0);
    std::vector<std::thread> burst =
        StartBurst(&books, victim, absl::StrCat("stop-burst-", i));
    Sleep(absl::Microseconds(Uniform(kStopBurst / 4, kStopBurst / 2) *
                             StaggerUs()));
    std::cout << "SIGSTOP " << ReplicaId(victim) << " at " << load.acked()
              << " acked" << std::endl;
    kill(pid, SIGSTOP);
    Sleep(absl::Seconds(2 * kLeaseTimeoutS));
    kill(pid, SIGCONT);
    for (std::thread& t : burst) t.join();
    Sleep(absl::Milliseconds(Uniform(1000, 2500)));
    ExpectNoUnexpectedExit(
        absl::StrCat("after SIGCONT of ", ReplicaId(victim)));
  }
  load.Stop();
  const int shared =
      AuditScenario(&books, Uniform(0, kReplicas - 1), 30 * Slowness());
  EXPECT_GT(shared, 0) << "no transaction was taken over";
}

// The outcome of one call made while PostgreSQL is down.
struct OutageProbe {
  std::string what;
  grpc::StatusCode code;
  absl::Duration took;
};

// OverlappingCalls, on calls of one gid as the ledger books them.
TEST(OverlappingCallsTest, FindsCallsInFlightAtOnce) {
  auto call = [](const std::string& replica, int64_t arrived, int64_t replied) {
    LedgerEntry e;
    e.gid = "g";
    e.branch_id = "01";
    e.op = "action";
    e.replica = replica;
    e.arrived = arrived;
    e.replied = replied;
    return e;
  };
  // One after the other: no overlap, whoever sent them.
  EXPECT_TRUE(OverlappingCalls({call("r1", 0, 1), call("r2", 2, 3)},
                               /*any_replica=*/true)
                  .empty());
  // At once from two replicas.
  EXPECT_EQ(OverlappingCalls({call("r1", 0, 2), call("r2", 1, 3)},
                             /*any_replica=*/false)
                .size(),
            1u);
  // At once from one replica: only for a sequential saga.
  EXPECT_TRUE(OverlappingCalls({call("r1", 0, 2), call("r1", 1, 3)},
                               /*any_replica=*/false)
                  .empty());
  EXPECT_EQ(OverlappingCalls({call("r1", 0, 2), call("r1", 1, 3)},
                             /*any_replica=*/true)
                .size(),
            1u);
  // Not answered yet: still in flight.
  EXPECT_EQ(OverlappingCalls({call("r1", 0, -1), call("r2", 5, 6)},
                             /*any_replica=*/false)
                .size(),
            1u);
  // A client's own call (no replica) and HTTP calls are left out.
  LedgerEntry http = call("r2", 1, -1);
  http.http = true;
  EXPECT_TRUE(OverlappingCalls({call("r1", 0, 2), call("", 1, 3), http}, false)
                  .empty());
}

// PostgreSQL stops for 10 s under load: every replica answers UNAVAILABLE
// (within a deadline: no hang) and keeps running; once PostgreSQL is back the
// replicas serve again by themselves (health SERVING, new sagas succeed) and
// every acknowledged transaction ends as scripted.
TEST_F(PgFailoverTest, PostgresOutage) {
  LoadBooks books;
  auto load =
      std::make_unique<FailoverLoad>(*replicas_, ledger_, &books, "pgdown");
  Sleep(absl::Seconds(3));
  std::cout << "stopping PostgreSQL at " << load->acked() << " acked"
            << std::endl;
  const absl::Time down_at = absl::Now();
  postgres_->Stop();
  // Calls on each replica during the outage, after a moment for the
  // connections to notice.
  Sleep(absl::Seconds(1));
  std::vector<OutageProbe> probes;
  const absl::Duration deadline = 8 * Slowness();
  int round = 0;
  while (absl::Now() < down_at + absl::Seconds(8)) {
    for (int i = 0; i < kReplicas; ++i) {
      std::unique_ptr<dtmgimp::Dtm::Stub> stub =
          dtmgimp::Dtm::NewStub(replicas_->Channel(i));
      const std::string gid = absl::StrCat("pgdown-probe-", round, "-", i);
      dtmd::client::Saga saga =
          BuildSaga(stub.get(), gid, SagaShape(), *ledger_);
      saga.SetCallTimeout(
          std::chrono::milliseconds(absl::ToInt64Milliseconds(deadline)));
      absl::Time start = absl::Now();
      const grpc::Status submit = saga.Submit();
      probes.push_back({absl::StrCat("Submit on ", ReplicaId(i)),
                        submit.error_code(), absl::Now() - start});
      books.sagas.Submitted(gid, SagaShape(), submit.ok());
      start = absl::Now();
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           absl::ToChronoMilliseconds(deadline));
      dtmd::admin::v1::GetTransactionRequest request;
      request.set_gid("pgdown-0");
      GetTransactionReply reply;
      const grpc::Status get = replicas_->process(i).admin()->GetTransaction(
          &context, request, &reply);
      probes.push_back({absl::StrCat("GetTransaction on ", ReplicaId(i)),
                        get.error_code(), absl::Now() - start});
      start = absl::Now();
      absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
          health = CheckHealth(replicas_->Channel(i));
      probes.push_back(
          {absl::StrCat("health on ", ReplicaId(i), " (",
                        health.ok() ? std::to_string(*health)
                                    : health.status().ToString(),
                        ")"),
           health.ok() ? grpc::StatusCode::OK : grpc::StatusCode::UNAVAILABLE,
           absl::Now() - start});
    }
    ++round;
    Sleep(absl::Milliseconds(500));
  }
  ExpectNoUnexpectedExit("during the outage");
  Sleep(down_at + absl::Seconds(10) - absl::Now());
  ASSERT_TRUE(postgres_->Start().ok());
  const absl::Time up_at = absl::Now();
  std::cout << "PostgreSQL back after " << absl::FormatDuration(up_at - down_at)
            << std::endl;
  for (const OutageProbe& p : probes) {
    // Submit and the admin read answer UNAVAILABLE, health answers (in
    // whatever status) and nothing waits out its deadline.
    if (absl::StartsWith(p.what, "health")) {
      EXPECT_EQ(p.code, grpc::StatusCode::OK) << p.what;
    } else {
      EXPECT_EQ(p.code, grpc::StatusCode::UNAVAILABLE)
          << p.what << " while PostgreSQL is down, after "
          << absl::FormatDuration(p.took);
    }
    EXPECT_LT(p.took, deadline) << p.what << " hung";
  }
  // Back by themselves: health SERVING and a new saga succeeds on each
  // replica, none restarted.
  for (int i = 0; i < kReplicas; ++i) {
    ExpectServesAgain(i, up_at, &books, absl::StrCat("pgdown-after-", i));
  }
  Sleep(absl::Seconds(3));
  load->Stop();
  AuditScenario(&books, 0, 30 * Slowness());
}

// The last replica is cut off from PostgreSQL for three times its lease
// (its connections hold every byte, delivered late once the partition
// heals) right after a burst of transactions sent to it, under load: the
// others take its transactions over; the cut-off replica calls no branch of
// a transaction it lost, its late writes cannot overwrite the others'
// progress, it keeps running and serves again by itself once the partition
// heals.
TEST_F(PgFailoverTest, PartitionFromPostgres) {
  LoadBooks books;
  FailoverLoad load(*replicas_, ledger_, &books, "cut");
  Sleep(absl::Seconds(2));
  std::vector<std::thread> burst =
      StartBurst(&books, kPartitioned, "cut-burst");
  Sleep(absl::Microseconds(Uniform(kStopBurst / 4, kStopBurst / 2) *
                           StaggerUs()));
  std::cout << "cutting " << ReplicaId(kPartitioned) << " off at "
            << load.acked() << " acked" << std::endl;
  proxy_->Pause();
  Sleep(absl::Seconds(3 * kLeaseTimeoutS));
  ExpectNoUnexpectedExit("during the partition");
  proxy_->Resume();
  const absl::Time healed = absl::Now();
  for (std::thread& t : burst) t.join();
  ExpectServesAgain(kPartitioned, healed, &books, "cut-after");
  Sleep(absl::Seconds(2));
  load.Stop();
  const int shared =
      AuditScenario(&books, (kPartitioned + 1) % kReplicas, 30 * Slowness());
  EXPECT_GT(shared, 0) << "no transaction was taken over";
}

}  // namespace
}  // namespace dtmd::testing
