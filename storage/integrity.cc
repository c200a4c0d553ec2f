#include "storage/integrity.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace dtmd::storage {
namespace {

// RocksDB's log format (the MANIFEST is written in it): 32 KiB blocks of
// records, each with a header of checksum (4), length (2, little-endian)
// and type (1); recyclable types add a 4-byte log number. A block's last
// bytes, too few for a header, are zero padding.
constexpr size_t kLogBlockSize = 32768;
constexpr size_t kLogHeaderSize = 7;
constexpr size_t kRecyclableHeaderSize = 11;
enum LogRecordType : uint8_t {
  kZeroType = 0,
  kFullType = 1,
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
  kRecyclableFullType = 5,
  kRecyclableFirstType = 6,
  kRecyclableMiddleType = 7,
  kRecyclableLastType = 8,
};

std::string PathOf(const std::string& dir, const std::string& name) {
  return absl::StrCat(dir, "/", name);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

absl::Status SyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  const int rc = fsync(fd);
  const int error = errno;
  close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("fsync ", path, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

// Where the log in `data` stops making sense; empty if it ends on a whole
// record.
std::string LogTailProblem(const std::string& data) {
  size_t pos = 0;
  bool in_fragmented_record = false;
  while (pos < data.size()) {
    const size_t left_in_block = kLogBlockSize - pos % kLogBlockSize;
    if (left_in_block < kLogHeaderSize) {
      pos += left_in_block;  // Block trailer.
      continue;
    }
    if (data.size() - pos < kLogHeaderSize) {
      return absl::StrCat("a record header is cut at byte ", pos);
    }
    const auto* header = reinterpret_cast<const uint8_t*>(data.data() + pos);
    const size_t length = header[4] | (static_cast<size_t>(header[5]) << 8);
    const uint8_t type = header[6];
    if (type == kZeroType && length == 0) {
      // Preallocated, never written space: the log ends here.
      for (size_t i = pos; i < data.size(); ++i) {
        if (data[i] != 0) return absl::StrCat("garbage after byte ", pos);
      }
      break;
    }
    const size_t header_size =
        type >= kRecyclableFullType && type <= kRecyclableLastType
            ? kRecyclableHeaderSize
            : kLogHeaderSize;
    if (data.size() - pos < header_size + length) {
      return absl::StrCat("a record is cut at byte ", pos, " (needs ",
                          header_size + length, " bytes, ", data.size() - pos,
                          " left)");
    }
    switch (type) {
      case kFirstType:
      case kRecyclableFirstType:
        in_fragmented_record = true;
        break;
      case kFullType:
      case kRecyclableFullType:
      case kLastType:
      case kRecyclableLastType:
        in_fragmented_record = false;
        break;
      default:  // Middle fragments and metadata records.
        break;
    }
    pos += header_size + length;
  }
  if (in_fragmented_record) return "the last record is incomplete";
  return "";
}

}  // namespace

bool FileExists(const std::string& dir, const std::string& name) {
  struct stat st;
  return stat(PathOf(dir, name).c_str(), &st) == 0 || errno != ENOENT;
}

absl::Status WriteMarker(const std::string& dir) {
  const std::string path = PathOf(dir, kMarkerFile);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "This directory holds a dtmd store. dtmd refuses to start if its "
           "RocksDB files are missing, instead of starting empty.\n";
    if (!out.flush()) {
      return absl::UnavailableError(absl::StrCat("cannot write ", path));
    }
  }
  if (absl::Status s = SyncPath(path, O_RDONLY); !s.ok()) return s;
  return SyncPath(dir, O_RDONLY | O_DIRECTORY);
}

absl::Status CheckManifestComplete(const std::string& dir) {
  absl::StatusOr<std::string> current = ReadWholeFile(PathOf(dir, "CURRENT"));
  if (!current.ok()) return absl::DataLossError(current.status().message());
  const std::string manifest(absl::StripAsciiWhitespace(*current));
  if (manifest.empty() || manifest.find('/') != std::string::npos) {
    return absl::DataLossError(
        absl::StrCat(dir, "/CURRENT is damaged: \"", *current, "\""));
  }
  absl::StatusOr<std::string> data = ReadWholeFile(PathOf(dir, manifest));
  if (!data.ok()) {
    return absl::DataLossError(
        absl::StrCat(dir, "/CURRENT names ", manifest,
                     ", which cannot be read: ", data.status().message()));
  }
  if (std::string problem = LogTailProblem(*data); !problem.empty()) {
    return absl::DataLossError(absl::StrCat(
        dir, "/", manifest, " is damaged (cut short?): ", problem, "."));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ReadSyncedSequence(const std::string& dir) {
  if (!FileExists(dir, kSyncedFile)) return 0;
  absl::StatusOr<std::string> data = ReadWholeFile(PathOf(dir, kSyncedFile));
  if (!data.ok()) return absl::UnavailableError(data.status().message());
  uint64_t sequence = 0, check = 0;
  if (data->size() != 16) {
    return absl::DataLossError(absl::StrCat(dir, "/", kSyncedFile, " has ",
                                            data->size(), " bytes, not 16"));
  }
  memcpy(&sequence, data->data(), 8);
  memcpy(&check, data->data() + 8, 8);
  if (check != ~sequence) {
    return absl::DataLossError(
        absl::StrCat(dir, "/", kSyncedFile, " is damaged"));
  }
  return sequence;
}

absl::StatusOr<DirLock> DirLock::Acquire(const std::string& dir) {
  const std::string path = PathOf(dir, kLockFile);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("data dir ", dir, " is in use by another store (lock ",
                     path, ": ", strerror(error), ")"));
  }
  return DirLock(fd);
}

DirLock::DirLock(DirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

DirLock::~DirLock() {
  if (fd_ >= 0) close(fd_);  // Releases the lock.
}

absl::StatusOr<SyncedSequenceFile> SyncedSequenceFile::Open(
    const std::string& dir) {
  const std::string path = PathOf(dir, kSyncedFile);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  return SyncedSequenceFile(fd);
}

SyncedSequenceFile::SyncedSequenceFile(SyncedSequenceFile&& other) noexcept
    : fd_(other.fd_) {
  other.fd_ = -1;
}

SyncedSequenceFile::~SyncedSequenceFile() {
  if (fd_ >= 0) close(fd_);
}

absl::Status SyncedSequenceFile::Record(uint64_t sequence) {
  char data[16];
  const uint64_t check = ~sequence;
  memcpy(data, &sequence, 8);
  memcpy(data + 8, &check, 8);
  if (pwrite(fd_, data, sizeof(data), 0) !=
      static_cast<ssize_t>(sizeof(data))) {
    return absl::UnavailableError(
        absl::StrCat("write ", kSyncedFile, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace dtmd::storage
