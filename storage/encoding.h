// Key encodings and record splitting of RocksDBStore (layout documented in
// rocksdb_store.h). Pure functions; no RocksDB types beyond none.
#ifndef DTMD_STORAGE_ENCODING_H_
#define DTMD_STORAGE_ENCODING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/store.h"

namespace dtmd::storage {

using ::dtmd::storage::v1::BranchDefinition;
using ::dtmd::storage::v1::BranchState;

inline constexpr size_t kDueTimeBytes = 8;

// Gids are printable ASCII, so '\0' cannot occur inside one and a branch
// prefix scan over gid '\0' finds exactly that transaction's branches.
// INVALID_ARGUMENT otherwise.
absl::Status ValidateGid(absl::string_view gid);

// gid '\0': the prefix of every branch key of gid.
std::string BranchPrefix(absl::string_view gid);
// The exclusive upper bound of BranchPrefix(gid): gid '\1'.
std::string BranchPrefixEnd(absl::string_view gid);
// gid '\0' position (4 bytes, big-endian).
std::string BranchKey(absl::string_view gid, int32_t position);

// next_cron_time_ms (8 bytes, big-endian; times before the epoch as 0) gid.
std::string DueKey(int64_t next_cron_time_ms, absl::string_view gid);
// The bare time prefix: every due key of a time >= time_ms sorts at or after
// it.
std::string DueTimePrefix(int64_t time_ms);
// The time of a due key; nullopt for a key too short to be one.
std::optional<int64_t> DueKeyTime(absl::string_view key);

// The finished family's key: as a due key, with the time a final record
// became final (its finish_time_ms, or update_time_ms when that is 0).
int64_t FinishedTime(const TransRecord& trans);
std::string FinishedKey(const TransRecord& trans);

// Splits a branch into what never changes and what does.
BranchDefinition DefinitionOf(const BranchRecord& branch);
BranchState StateOf(const BranchRecord& branch);

// Records, for each branch of one creation, whether its payload equals that
// of an earlier branch with the same branch_id (a saga step's action and
// compensation) and, if so, points its definition there instead of storing
// the payload again. `definitions[i]` belongs to `branches[i]`.
void SharePayloads(const std::vector<BranchRecord>& branches,
                   std::vector<BranchDefinition>& definitions);

// Joins one branch's records. `payload_source` is the definition holding the
// payload when definition.payload_position() is set (nullptr otherwise).
BranchRecord MergeBranch(absl::string_view gid, int32_t position,
                         const BranchDefinition& definition,
                         const BranchDefinition* payload_source,
                         const BranchState& state);

// The gid of a branch key (empty if malformed).
absl::string_view BranchKeyGid(absl::string_view key);

// Position encoded at the end of a branch key; -1 if malformed.
int32_t BranchKeyPosition(absl::string_view key);

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_ENCODING_H_
