// Sample records for the storage tools and micro-benchmarks: sagas built the
// way dtmd builds them (BuildSaga on a request shaped like the ones DTM's
// clients send), so the bytes measured are the bytes dtmd stores.
#ifndef DTMD_TESTS_BENCH_SAMPLE_RECORDS_H_
#define DTMD_TESTS_BENCH_SAMPLE_RECORDS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/request_validation.h"

namespace dtmd::bench {

// The Steps JSON of a sequential saga of `steps` steps, each calling
// 127.0.0.1:8081/busi.Busi/Action<i> and compensating with Revert<i>.
std::string SampleStepsJson(int steps);

// A submitted sequential saga of `steps` steps with 64-byte payloads, created
// at `now_ms`. Aborts on a programming error (the request is valid).
NewTransaction SampleSaga(absl::string_view gid, int steps, int64_t now_ms);

// Marks the first `actions` actions succeeded, as their answers would.
void MarkActionsSucceeded(NewTransaction* txn, int actions, int64_t now_ms);

// Makes the saga a finished one: every action succeeded, status succeed.
void MarkFinished(NewTransaction* txn, int64_t finish_ms);

// Sets the gid on the transaction and on each branch.
void SetGid(NewTransaction* txn, const std::string& gid);

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_SAMPLE_RECORDS_H_
