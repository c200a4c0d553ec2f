#include "server/txn/json_reader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace dtmd::txn {

const char* JsonKindName(JsonKind kind) {
  switch (kind) {
    case JsonKind::kNull:
      return "null";
    case JsonKind::kBoolean:
      return "boolean";
    case JsonKind::kNumber:
      return "number";
    case JsonKind::kString:
      return "string";
    case JsonKind::kObject:
      return "object";
    case JsonKind::kArray:
      return "array";
  }
  return "unknown";
}

JsonReader::JsonReader(std::string document, int max_depth)
    : document_(std::move(document)), max_depth_(max_depth) {}

absl::Status JsonReader::Read(absl::string_view text,
                              absl::string_view invalid_json) {
  const bool parsed = nlohmann::json::sax_parse(text.begin(), text.end(), this);
  if (!error_.ok()) return error_;
  if (!parsed) return absl::InvalidArgumentError(invalid_json);
  return absl::OkStatus();
}

bool JsonReader::Fail(absl::Status status) {
  if (error_.ok()) error_ = std::move(status);
  return false;
}

bool JsonReader::null() { return OnScalar(depth_, JsonScalar()); }

bool JsonReader::boolean(bool value) {
  JsonScalar scalar;
  scalar.kind = JsonKind::kBoolean;
  scalar.boolean = value;
  return OnScalar(depth_, scalar);
}

bool JsonReader::number_integer(int64_t value) {
  JsonScalar scalar;
  scalar.kind = JsonKind::kNumber;
  scalar.is_integer = true;
  scalar.negative = value < 0;
  // Two's complement negation in unsigned arithmetic: exact for INT64_MIN.
  scalar.magnitude = scalar.negative ? 0 - static_cast<uint64_t>(value)
                                     : static_cast<uint64_t>(value);
  return OnScalar(depth_, scalar);
}

bool JsonReader::number_unsigned(uint64_t value) {
  JsonScalar scalar;
  scalar.kind = JsonKind::kNumber;
  scalar.is_integer = true;
  scalar.magnitude = value;
  return OnScalar(depth_, scalar);
}

bool JsonReader::number_float(double, const std::string&) {
  JsonScalar scalar;
  scalar.kind = JsonKind::kNumber;
  return OnScalar(depth_, scalar);
}

bool JsonReader::string(std::string& value) {
  JsonScalar scalar;
  scalar.kind = JsonKind::kString;
  scalar.text = value;
  return OnScalar(depth_, scalar);
}

bool JsonReader::start_object(std::size_t) { return Open(JsonKind::kObject); }
bool JsonReader::end_object() { return Close(JsonKind::kObject); }
bool JsonReader::start_array(std::size_t) { return Open(JsonKind::kArray); }
bool JsonReader::end_array() { return Close(JsonKind::kArray); }
bool JsonReader::key(std::string& value) { return OnKey(depth_, value); }

bool JsonReader::Open(JsonKind kind) {
  if (!OnOpen(depth_, kind)) return false;
  if (++depth_ > max_depth_) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        document_, ": nested deeper than ", max_depth_, " levels")));
  }
  return true;
}

bool JsonReader::Close(JsonKind kind) { return OnClose(--depth_, kind); }

}  // namespace dtmd::txn
