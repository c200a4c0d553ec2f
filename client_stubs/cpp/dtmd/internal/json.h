// JSON for the client helpers' request fields (Steps, CustomedData). Not part
// of the client's public API: the .cc files include it, so that the public
// headers need no JSON library.
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_INTERNAL_JSON_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_INTERNAL_JSON_H_

#include <nlohmann/json.hpp>
#include <string>

namespace dtmd::client::internal {

// dump() that never throws: invalid UTF-8 (a URL is caller input) is replaced
// rather than raised as an exception.
inline std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dtmd::client::internal

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_INTERNAL_JSON_H_
