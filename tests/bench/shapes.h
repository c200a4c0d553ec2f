// Transaction shapes the benchmark can drive. Adding a shape is a change to
// shapes.cc alone: one entry in the table.
#ifndef DTMD_TESTS_BENCH_SHAPES_H_
#define DTMD_TESTS_BENCH_SHAPES_H_

#include <functional>
#include <string>
#include <vector>

#include "dtmgimp.pb.h"

namespace dtmd::bench {

struct ShapeContext {
  std::string branch_address;    // host:port of the bench's branch server.
  std::string http_branch_base;  // http://host:port of its HTTP side.
  int64_t retry_interval_s = 0;  // for shapes that retry; 0 = default.
};

// One RPC of a transaction, as a client sends it: over gRPC, or (kHttp*)
// over DTM's HTTP API.
struct ShapeCall {
  enum Method { kPrepare, kRegisterBranch, kSubmit, kHttpSubmit };
  Method method = kSubmit;
  dtmgimp::DtmRequest request;       // kPrepare, kSubmit.
  dtmgimp::DtmBranchRequest branch;  // kRegisterBranch.
  std::string http_body;             // kHttpSubmit: the JSON posted.
};

// The HTTP path of a kHttp* call.
const char* HttpPath(ShapeCall::Method method);

struct Shape {
  std::string name;
  std::string description;
  // Builds the RPCs of one transaction, sent one after the other (the next
  // once the previous answered OK). The transaction's latency runs from the
  // first call to the last answer.
  std::function<std::vector<ShapeCall>(const std::string& gid,
                                       const ShapeContext& context)>
      build;
};

const std::vector<Shape>& Shapes();
// nullptr for an unknown name.
const Shape* FindShape(const std::string& name);

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_SHAPES_H_
