// StepsReader: reads a request's Steps (docs/protocol.md section 2) for the
// modes that take them (saga, msg): a JSON array with one object per step,
// each naming a URL per op ("action", "compensate"). One reader, so that
// every mode applies the same rules and limits to its steps.
//
// The reader keeps only the URLs it is asked for, checks each as it arrives
// and stops at the first limit crossed, so a request over a limit costs no
// more memory than one at it (json_reader.h). Thread-compatible; one reader
// per document.
#ifndef DTMD_SERVER_TXN_STEPS_READER_H_
#define DTMD_SERVER_TXN_STEPS_READER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/txn/json_reader.h"

namespace dtmd::txn {

// Limits on a request's Steps (and, for depth, its CustomedData).
struct StepsLimits {
  int max_steps = 1000;
  int max_url_bytes = 1024;
  // Containers open at once in Steps or CustomedData (DTM's shapes need 3).
  int max_json_depth = 32;
};

// Why a non-empty step URL cannot be called (ParseBranchUrl's message), or ""
// when it can.
std::string BranchUrlProblem(absl::string_view url);

class StepsReader : public JsonReader {
 public:
  // Checks a non-empty URL already within max_url_bytes: returns what is
  // wrong with it, or "" when it is acceptable.
  using UrlCheck = std::string (*)(absl::string_view url);

  // Keeps, for each step, the URL of each op in `ops` (at least one; other
  // members are ignored at any depth); checks every non-empty one with
  // `check`.
  StepsReader(const StepsLimits& limits, std::vector<std::string> ops,
              UrlCheck check = &BranchUrlProblem);

  // Reads `steps_json` ([{...}, ...]; empty or null: no steps), then checks
  // that there is one payload per step. INVALID_ARGUMENT naming the field:
  // "Steps: not valid JSON", "Steps: not a JSON array but object",
  // "Steps[1]: not a JSON object but string", "Steps[0].action: not a string
  // but number", "Steps[2].action: <the check's message>", "Steps[0].action:
  // URL is N bytes, more than the limit of M", "Steps: more than the limit of
  // N steps", "Steps: nested deeper than N levels", "BinPayloads: got 2
  // payloads for 3 steps". A missing, null or empty URL is "".
  absl::Status ReadSteps(absl::string_view steps_json, size_t payload_count);

  int steps() const { return static_cast<int>(urls_.size() / ops_.size()); }

  // The URL that step `step` gives the op ops[op] ("" when none). Mutable,
  // so that callers can move it out.
  std::string& url(int step, int op) { return urls_[step * ops_.size() + op]; }

 private:
  // Depths: 0 the document, 1 a step, 2 a step's member.
  bool OnScalar(int depth, const JsonScalar& value) override;
  bool OnOpen(int depth, JsonKind kind) override;
  bool OnKey(int depth, absl::string_view key) override;

  bool ReadUrl(absl::string_view url);
  std::string Field() const;
  bool NotAn(absl::string_view what, JsonKind kind);
  bool NotAnObject(JsonKind kind);
  bool NotAString(JsonKind kind);

  const StepsLimits limits_;
  const std::vector<std::string> ops_;
  const UrlCheck check_;
  std::vector<std::string> urls_;  // ops_.size() per step.
  int member_op_ = -1;  // the index in ops_ the current member sets, or -1.
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_STEPS_READER_H_
