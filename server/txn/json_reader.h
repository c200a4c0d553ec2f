// JsonReader: reads a JSON document as a stream of events (nlohmann's SAX
// parser) into whatever a request field means, without building a DOM.
//
// Why: a DOM costs tens of bytes per value before any limit can be checked,
// so 16 MiB of "[{},{},...]" would allocate hundreds of MiB before "more than
// max_steps" could be said. A reader checks its limits as the events arrive
// and stops the parse at the first error, so memory stays proportional to
// what the reader keeps. Nesting deeper than the reader's max_depth stops the
// parse too. Thread-compatible; one reader per document.
#ifndef DTMD_SERVER_TXN_JSON_READER_H_
#define DTMD_SERVER_TXN_JSON_READER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dtmd::txn {

enum class JsonKind { kNull, kBoolean, kNumber, kString, kObject, kArray };

// JSON's name for a kind, as in messages ("not a string but number").
const char* JsonKindName(JsonKind kind);

// A scalar value. `integer` is set for numbers that are integers (is_integer
// true); `negative` tells the sign apart when the magnitude needs 64 bits.
struct JsonScalar {
  JsonKind kind = JsonKind::kNull;
  bool boolean = false;
  bool is_integer = false;
  bool negative = false;
  uint64_t magnitude = 0;  // |value| of an integer.
  absl::string_view text;  // a string's (UTF-8 checked) bytes.
};

class JsonReader {
 public:
  // `document` names the field in messages ("Steps"); `max_depth` bounds the
  // number of containers open at once.
  JsonReader(std::string document, int max_depth);
  virtual ~JsonReader() = default;

  // Parses `text` (strict: one value, nothing after it). OK, the error a
  // reader method reported, "<document>: nested deeper than N levels", or
  // `invalid_json` (the whole message) when `text` is not valid JSON.
  absl::Status Read(absl::string_view text, absl::string_view invalid_json);

  // The event calls, for nlohmann's SAX interface only. Each returns false to
  // stop the parse.
  bool null();
  bool boolean(bool value);
  bool number_integer(int64_t value);
  bool number_unsigned(uint64_t value);
  bool number_float(double value, const std::string& text);
  bool string(std::string& value);
  template <typename Binary>
  bool binary(Binary& value) {
    return false;  // never produced by the JSON text parser.
  }
  bool start_object(std::size_t elements);
  bool key(std::string& value);
  bool end_object();
  bool start_array(std::size_t elements);
  bool end_array();
  template <typename Exception>
  bool parse_error(std::size_t position, const std::string& last_token,
                   const Exception& error) {
    return false;
  }

 protected:
  // What a reader implements. `depth` is the number of containers enclosing
  // the event: 0 for the document's top value, 1 for an element of the
  // top-level array or a member of the top-level object, and so on. Return
  // false after Fail() to stop.
  virtual bool OnScalar(int depth, const JsonScalar& value) = 0;
  // A container opens at `depth` (its own position, as for a scalar).
  virtual bool OnOpen(int depth, JsonKind kind) = 0;
  // The container opened at `depth` closes.
  virtual bool OnClose(int depth, JsonKind kind) { return true; }
  // A member name; its value follows at the same `depth`.
  virtual bool OnKey(int depth, absl::string_view key) = 0;

  // Records the first error; returns false, to be returned by the caller.
  bool Fail(absl::Status status);

 private:
  bool Open(JsonKind kind);
  bool Close(JsonKind kind);

  const std::string document_;
  const int max_depth_;
  int depth_ = 0;  // containers open now.
  absl::Status error_;
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_JSON_READER_H_
