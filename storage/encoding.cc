#include "storage/encoding.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dtmd::storage {
namespace {

void AppendBigEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

uint64_t ReadBigEndian(absl::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

}  // namespace

absl::Status ValidateGid(absl::string_view gid) {
  if (gid.empty()) return absl::InvalidArgumentError("empty gid");
  for (char c : gid) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat("gid contains a non-printable character: ", gid));
    }
  }
  return absl::OkStatus();
}

std::string BranchPrefix(absl::string_view gid) {
  std::string key(gid);
  key.push_back('\0');
  return key;
}

std::string BranchPrefixEnd(absl::string_view gid) {
  // Sorts after every gid '\0' key and before any longer gid (printable
  // characters are above '\1'), so gid "a" never sees "ab".
  std::string key(gid);
  key.push_back('\x01');
  return key;
}

std::string BranchKey(absl::string_view gid, int32_t position) {
  std::string key = BranchPrefix(gid);
  AppendBigEndian(static_cast<uint32_t>(position), 4, &key);
  return key;
}

absl::string_view BranchKeyGid(absl::string_view key) {
  // gid '\0' position (4 bytes).
  return key.size() > 5 ? key.substr(0, key.size() - 5) : absl::string_view();
}

int32_t BranchKeyPosition(absl::string_view key) {
  if (key.size() < 5 || key[key.size() - 5] != '\0') return -1;
  return static_cast<int32_t>(ReadBigEndian(key.substr(key.size() - 4)));
}

std::string DueTimePrefix(int64_t time_ms) {
  std::string key;
  AppendBigEndian(static_cast<uint64_t>(std::max<int64_t>(time_ms, 0)),
                  kDueTimeBytes, &key);
  return key;
}

std::string DueKey(int64_t next_cron_time_ms, absl::string_view gid) {
  std::string key = DueTimePrefix(next_cron_time_ms);
  key.append(gid.data(), gid.size());
  return key;
}

std::optional<int64_t> DueKeyTime(absl::string_view key) {
  if (key.size() <= kDueTimeBytes) return std::nullopt;
  return static_cast<int64_t>(ReadBigEndian(key.substr(0, kDueTimeBytes)));
}

int64_t FinishedTime(const TransRecord& trans) {
  return trans.finish_time_ms() > 0 ? trans.finish_time_ms()
                                    : trans.update_time_ms();
}

std::string FinishedKey(const TransRecord& trans) {
  return DueKey(FinishedTime(trans), trans.gid());
}

BranchDefinition DefinitionOf(const BranchRecord& branch) {
  BranchDefinition definition;
  definition.set_branch_id(branch.branch_id());
  definition.set_op(branch.op());
  definition.set_url(branch.url());
  definition.set_bin_data(branch.bin_data());
  definition.set_create_time_ms(branch.create_time_ms());
  return definition;
}

BranchState StateOf(const BranchRecord& branch) {
  BranchState state;
  state.set_status(branch.status());
  state.set_finish_time_ms(branch.finish_time_ms());
  state.set_last_error(branch.last_error());
  state.set_call_count(branch.call_count());
  state.set_last_code(branch.last_code());
  return state;
}

void SharePayloads(const std::vector<BranchRecord>& branches,
                   std::vector<BranchDefinition>& definitions) {
  // branch_id -> index of the first branch with a payload under that id.
  std::map<absl::string_view, size_t> first;
  for (size_t i = 0; i < branches.size(); ++i) {
    const BranchRecord& branch = branches[i];
    if (branch.bin_data().empty()) continue;
    auto [it, inserted] = first.emplace(branch.branch_id(), i);
    if (inserted || branches[it->second].bin_data() != branch.bin_data()) {
      continue;
    }
    definitions[i].clear_bin_data();
    definitions[i].set_payload_position(branches[it->second].position());
  }
}

BranchRecord MergeBranch(absl::string_view gid, int32_t position,
                         const BranchDefinition& definition,
                         const BranchDefinition* payload_source,
                         const BranchState& state) {
  BranchRecord branch;
  branch.set_gid(std::string(gid));
  branch.set_position(position);
  branch.set_branch_id(definition.branch_id());
  branch.set_op(definition.op());
  branch.set_url(definition.url());
  branch.set_bin_data(payload_source != nullptr ? payload_source->bin_data()
                                                : definition.bin_data());
  branch.set_create_time_ms(definition.create_time_ms());
  branch.set_status(state.status());
  branch.set_finish_time_ms(state.finish_time_ms());
  branch.set_last_error(state.last_error());
  branch.set_call_count(state.call_count());
  branch.set_last_code(state.last_code());
  return branch;
}

}  // namespace dtmd::storage
