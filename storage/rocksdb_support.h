// What RocksDBStore needs from RocksDB beyond the DB itself: its statuses as
// absl::Status, and its info log routed through glog.
#ifndef DTMD_STORAGE_ROCKSDB_SUPPORT_H_
#define DTMD_STORAGE_ROCKSDB_SUPPORT_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/env.h"
#include "rocksdb/status.h"

namespace dtmd::storage {

// RocksDB errors become UNAVAILABLE when retrying may help (I/O, busy, lock
// held, no space) and INTERNAL otherwise (corruption, invalid options); the
// message, prefixed by `context`, is kept either way.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context);

// RocksDB's info log as glog lines instead of a LOG file in the data dir:
// a LOG file fills the same disk as the data, and RocksDB writing it on a
// full disk is what aborted dtmd (an assertion in RocksDB's file writer).
// Info-level lines go to VLOG(2), warnings and errors to LOG(WARNING/ERROR).
std::shared_ptr<rocksdb::Logger> NewGlogInfoLogger();

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_ROCKSDB_SUPPORT_H_
