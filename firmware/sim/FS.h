// The core's file system API (FS.h) on the twin: LittleFS (LittleFS.h) keeps its files in a
// directory beside the flash file, "<ESP_HIL_FLASH>.fs/", which the test reads and fills
// (harness: device.fs). What a board's LittleFS refuses, the twin refuses too: a name
// longer than kMaxName characters, a path outside "/". Sizes and wear are not modelled.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "Stream.h"
#include "WString.h"

namespace fs {

enum SeekMode { SeekSet = 0, SeekCur = 1, SeekEnd = 2 };

class FS;

// An open file or directory. Copies share the same open file (as the core's, which are
// reference counted); the last copy to go closes it.
class File : public Stream {
 public:
  File() = default;
  File(const File& other);
  File& operator=(const File& other);
  ~File() override;

  size_t write(uint8_t byte) override;
  size_t write(const uint8_t* buf, size_t size) override;
  using Print::write;
  int availableForWrite() override;
  int available() override;
  int read() override;
  int peek() override;
  void flush() override;
  int read(uint8_t* buf, size_t size);
  size_t readBytes(char* buffer, size_t length) {
    return static_cast<size_t>(read(reinterpret_cast<uint8_t*>(buffer), length));
  }
  bool seek(uint32_t pos, SeekMode mode);
  bool seek(uint32_t pos) { return seek(pos, SeekSet); }
  size_t position() const;
  size_t size() const;
  void close();
  operator bool() const { return slot_ >= 0; }  // NOLINT: Arduino API
  const char* name() const;
  const char* fullName() const;
  bool truncate(uint32_t size);
  bool isFile() const;
  bool isDirectory() const;
  File openNextFile();
  void rewindDirectory();

 private:
  friend class FS;
  friend class Dir;
  explicit File(int slot) : slot_(slot) {}
  int slot_ = -1;
};

// A directory's entries, one at a time: next() moves to the first, then the following.
class Dir {
 public:
  Dir() = default;
  File openFile(const char* mode);
  String fileName();
  size_t fileSize();
  bool isFile() const;
  bool isDirectory() const;
  bool next();
  bool rewind();

 private:
  friend class FS;
  File dir_;
  char entry_[64] = {};
  bool entry_is_dir_ = false;
  bool has_entry_ = false;
};

struct FSInfo {
  size_t totalBytes;
  size_t usedBytes;
  size_t blockSize;
  size_t pageSize;
  size_t maxOpenFiles;
  size_t maxPathLength;
};

class FSConfig {
 public:
  explicit FSConfig(uint32_t type = 0, bool autoFormat = true)
      : _type(type), _autoFormat(autoFormat) {}
  FSConfig setAutoFormat(bool val = true) {
    _autoFormat = val;
    return *this;
  }
  uint32_t _type;
  bool _autoFormat;
};

class FS {
 public:
  // LittleFS's name limit on the core (LFS_NAME_MAX): longer names are refused.
  static constexpr size_t kMaxName = 31;

  bool setConfig(const FSConfig& cfg);
  bool begin();
  void end();
  bool format();
  bool info(FSInfo& info);
  File open(const char* path, const char* mode);
  File open(const String& path, const char* mode) { return open(path.c_str(), mode); }
  bool exists(const char* path);
  bool exists(const String& path) { return exists(path.c_str()); }
  Dir openDir(const char* path);
  Dir openDir(const String& path) { return openDir(path.c_str()); }
  bool remove(const char* path);
  bool remove(const String& path) { return remove(path.c_str()); }
  bool rename(const char* from, const char* to);
  bool rename(const String& from, const String& to) { return rename(from.c_str(), to.c_str()); }
  bool mkdir(const char* path);
  bool mkdir(const String& path) { return mkdir(path.c_str()); }
  bool rmdir(const char* path);
  bool rmdir(const String& path) { return rmdir(path.c_str()); }
  bool gc();
  bool check();
};

}  // namespace fs

using fs::Dir;
using fs::File;
using fs::FS;
using fs::FSConfig;
using fs::FSInfo;
using fs::SeekCur;
using fs::SeekEnd;
using fs::SeekMode;
using fs::SeekSet;
