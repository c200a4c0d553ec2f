#include "tests/bench/load_driver.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "dtmgimp.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "server/http_branch_invoker.h"
#include "tests/bench/proc_stats.h"

namespace dtmd::bench {
namespace {

enum Phase { kWarmup, kMeasure, kStop };

constexpr const char* kCodeNames[] = {"OK",
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
constexpr int kCodes = 17;

struct Shared {
  const LoadOptions* options;
  std::vector<std::unique_ptr<dtmgimp::Dtm::Stub>> stubs;
  std::unique_ptr<HttpBranchInvoker> http;  // HTTP calls; null: none.
  std::atomic<int> phase{kWarmup};
  std::atomic<int64_t> next_id{0};
  std::atomic<int64_t> remaining{0};  // count mode.
  std::array<std::atomic<int64_t>, kCodes> codes{};
  absl::Mutex mu;
  int active_slots ABSL_GUARDED_BY(mu) = 0;
};

// One closed loop: a transaction, then the next, until the run stops.
class Slot {
 public:
  Slot(Shared* shared, int index) : shared_(shared), index_(index) {}

  void Issue() {
    const LoadOptions& o = *shared_->options;
    bool stop = shared_->phase.load() == kStop;
    if (!stop && o.count > 0) stop = shared_->remaining.fetch_sub(1) <= 0;
    if (stop) {
      absl::MutexLock lock(&shared_->mu);
      --shared_->active_slots;
      return;
    }
    auto* txn = new Transaction;
    const int64_t id = shared_->next_id.fetch_add(1);
    txn->target = static_cast<size_t>(id) % o.targets.size();
    txn->calls = o.shape->build(absl::StrCat(o.gid_prefix, "-", id), o.context);
    txn->deadline = std::chrono::system_clock::now() +
                    std::chrono::milliseconds(o.call_timeout_ms);
    txn->start = absl::Now();
    Send(txn);
  }

  const std::vector<double>& latencies_ms() const { return latencies_ms_; }
  int64_t ok() const { return ok_; }
  int64_t completed() const { return completed_; }

 private:
  // One transaction: its calls, sent one at a time.
  struct Transaction {
    std::vector<ShapeCall> calls;
    size_t next = 0;    // the call in flight.
    size_t target = 0;  // index in LoadOptions::targets.
    std::unique_ptr<grpc::ClientContext> context;  // one per call.
    google::protobuf::Empty reply;
    std::chrono::system_clock::time_point deadline;  // of the whole.
    absl::Time start;
  };

  // Sends txn->calls[txn->next]; its answer comes to OnAnswer.
  void Send(Transaction* txn) {
    // The target's channels follow one another in stubs.
    const size_t channels =
        shared_->stubs.size() / shared_->options->targets.size();
    dtmgimp::Dtm::Stub* stub =
        shared_->stubs[txn->target * channels + index_ % channels].get();
    txn->context = std::make_unique<grpc::ClientContext>();
    txn->context->set_deadline(txn->deadline);
    const ShapeCall& call = txn->calls[txn->next];
    if (call.method == ShapeCall::kHttpSubmit) {
      SendHttp(txn, call);
      return;
    }
    auto done = [this, txn](grpc::Status status) { OnAnswer(txn, status); };
    switch (call.method) {
      case ShapeCall::kPrepare:
        stub->async()->Prepare(txn->context.get(), &call.request, &txn->reply,
                               std::move(done));
        break;
      case ShapeCall::kRegisterBranch:
        stub->async()->RegisterBranch(txn->context.get(), &call.branch,
                                      &txn->reply, std::move(done));
        break;
      case ShapeCall::kSubmit:
        stub->async()->Submit(txn->context.get(), &call.request, &txn->reply,
                              std::move(done));
        break;
      case ShapeCall::kHttpSubmit:
        break;
    }
  }

  // An HTTP call: its answer is read as DTM's client reads it (200 OK,
  // 409 ABORTED, 425 FAILED_PRECONDITION, else UNKNOWN or the transport's
  // error).
  void SendHttp(Transaction* txn, const ShapeCall& call) {
    if (shared_->http == nullptr) {
      OnAnswer(txn, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 "no HTTP target"));
      return;
    }
    BranchCall http;
    http.url =
        absl::StrCat("http://", shared_->options->http_targets[txn->target],
                     HttpPath(call.method));
    http.payload = call.http_body;
    http.timeout_ms = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(
               txn->deadline - std::chrono::system_clock::now())
               .count());
    shared_->http->Call(std::move(http), [this, txn](BranchAnswer answer) {
      OnAnswer(txn, grpc::Status(static_cast<grpc::StatusCode>(answer.code),
                                 answer.message));
    });
  }

  // The next call of the transaction, or its end: the first failed call or
  // the last answer.
  void OnAnswer(Transaction* txn, const grpc::Status& status) {
    if (status.ok() && ++txn->next < txn->calls.size()) {
      Send(txn);
      return;
    }
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - txn->start);
    delete txn;
    if (shared_->phase.load() == kMeasure) {
      ++completed_;
      const int code = static_cast<int>(status.error_code());
      shared_->codes[code >= 0 && code < kCodes ? code : 2]++;
      if (status.ok()) {
        ++ok_;
        latencies_ms_.push_back(ms);
      }
    }
    Issue();
  }

  Shared* const shared_;
  const int index_;
  // Touched only by this slot's completions, which never overlap (a slot
  // has one call in flight at a time).
  std::vector<double> latencies_ms_;
  int64_t ok_ = 0;
  int64_t completed_ = 0;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * (sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

// Derives the figures from the raw ones.
void Summarize(LoadResult* r) {
  std::sort(r->latencies_ms.begin(), r->latencies_ms.end());
  r->tps = r->seconds > 0 ? r->ok / r->seconds : 0;
  r->p50_ms = Percentile(r->latencies_ms, 0.50);
  r->p90_ms = Percentile(r->latencies_ms, 0.90);
  r->p99_ms = Percentile(r->latencies_ms, 0.99);
  r->p999_ms = Percentile(r->latencies_ms, 0.999);
  r->max_ms = r->latencies_ms.empty() ? 0 : r->latencies_ms.back();
  r->cpu_s_per_1k =
      r->cpu_seconds >= 0 && r->ok > 0 ? r->cpu_seconds / (r->ok / 1000.0) : -1;
}

}  // namespace

LoadResult Combine(const std::vector<LoadResult>& runs) {
  LoadResult total;
  total.cpu_seconds = 0;
  for (const LoadResult& r : runs) {
    total.seconds += r.seconds;
    total.completed += r.completed;
    total.ok += r.ok;
    for (const auto& [code, count] : r.errors) total.errors[code] += count;
    total.latencies_ms.insert(total.latencies_ms.end(), r.latencies_ms.begin(),
                              r.latencies_ms.end());
    if (r.cpu_seconds < 0 || total.cpu_seconds < 0) {
      total.cpu_seconds = -1;
    } else {
      total.cpu_seconds += r.cpu_seconds;
    }
    total.rss_mib = std::max(total.rss_mib, r.rss_mib);
  }
  Summarize(&total);
  return total;
}

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options) {
  if (options.shape == nullptr) {
    return absl::InvalidArgumentError("no shape");
  }
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("no target");
  }
  if (!options.http_targets.empty() &&
      options.http_targets.size() != options.targets.size()) {
    return absl::InvalidArgumentError(
        "as many HTTP targets as targets are needed");
  }
  Shared shared;
  shared.options = &options;
  if (!options.http_targets.empty()) {
    HttpInvokerOptions http;
    http.max_host_connections = std::max(1, options.concurrency);
    http.max_connections = std::max(1, options.concurrency);
    absl::StatusOr<std::unique_ptr<HttpBranchInvoker>> invoker =
        HttpBranchInvoker::Create(http);
    if (!invoker.ok()) return invoker.status();
    shared.http = *std::move(invoker);
  }
  for (const std::string& target : options.targets) {
    for (int i = 0; i < std::max(1, options.channels); ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("dtmd.bench.channel", i);  // a connection per channel.
      auto channel = grpc::CreateCustomChannel(
          target, grpc::InsecureChannelCredentials(), args);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                     std::chrono::seconds(10))) {
        return absl::UnavailableError(
            absl::StrCat("cannot connect to ", target));
      }
      shared.stubs.push_back(dtmgimp::Dtm::NewStub(channel));
    }
  }
  const bool count_mode = options.count > 0;
  shared.remaining = options.count;
  std::vector<std::unique_ptr<Slot>> slots;
  {
    absl::MutexLock lock(&shared.mu);
    shared.active_slots = options.concurrency;
  }
  if (count_mode) shared.phase = kMeasure;
  for (int i = 0; i < options.concurrency; ++i) {
    slots.push_back(std::make_unique<Slot>(&shared, i));
  }
  for (auto& slot : slots) slot->Issue();

  // The targets' processes added up.
  auto sample = [&]() -> absl::StatusOr<ProcSample> {
    if (options.target_pids.empty()) return absl::NotFoundError("no pid");
    ProcSample total;
    for (pid_t pid : options.target_pids) {
      absl::StatusOr<ProcSample> one = SampleProcess(pid);
      if (!one.ok()) return one.status();
      total.cpu_seconds += one->cpu_seconds;
      total.rss_mib += one->rss_mib;
      total.peak_rss_mib += one->peak_rss_mib;
    }
    return total;
  };
  absl::Time start, end;
  absl::StatusOr<ProcSample> before, after;
  auto all_done = [&shared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
    return shared.active_slots == 0;
  };
  if (count_mode) {
    before = sample();
    start = absl::Now();
    absl::MutexLock lock(&shared.mu);
    shared.mu.Await(absl::Condition(&all_done));
    end = absl::Now();
    after = sample();
  } else {
    absl::SleepFor(absl::Seconds(options.warmup_s));
    before = sample();
    start = absl::Now();
    shared.phase = kMeasure;
    absl::SleepFor(absl::Seconds(options.duration_s));
    shared.phase = kStop;
    end = absl::Now();
    after = sample();
    absl::MutexLock lock(&shared.mu);
    shared.mu.AwaitWithTimeout(
        absl::Condition(&all_done),
        absl::Milliseconds(options.call_timeout_ms + 1000));
  }

  LoadResult result;
  result.seconds = absl::ToDoubleSeconds(end - start);
  for (const auto& slot : slots) {
    result.completed += slot->completed();
    result.ok += slot->ok();
    result.latencies_ms.insert(result.latencies_ms.end(),
                               slot->latencies_ms().begin(),
                               slot->latencies_ms().end());
  }
  for (int code = 1; code < kCodes; ++code) {
    if (shared.codes[code] > 0) {
      result.errors[kCodeNames[code]] = shared.codes[code];
    }
  }
  if (before.ok() && after.ok()) {
    result.cpu_seconds = after->cpu_seconds - before->cpu_seconds;
    result.rss_mib = after->peak_rss_mib;
  }
  Summarize(&result);
  // Slots are still referenced by calls that outlived the wait only if the
  // target hung past the call deadline; they end with it, so keep the slots.
  if (!count_mode) {
    absl::MutexLock lock(&shared.mu);
    if (shared.active_slots != 0) {
      shared.mu.Await(absl::Condition(&all_done));
    }
  }
  return result;
}

}  // namespace dtmd::bench
