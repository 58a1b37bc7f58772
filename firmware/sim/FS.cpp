// LittleFS of the twin (FS.h, LittleFS.h): a directory beside the flash file,
// "<ESP_HIL_FLASH>.fs/", so files outlive resets as in flash, and the test can put a
// configuration there before boot or read what the sketch wrote. Open files and
// directories live in a fixed table (kHandles), shared by the File copies that name them.
#include "FS.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "LittleFS.h"
#include "sim_internal.h"

fs::FS LittleFS;

namespace {

constexpr int kHandles = 16;
constexpr size_t kPathMax = 128;  // inside the file system, "/a/b.txt"
// The 4M2M layout's file system (the core's eagle.flash.4m2m.ld: 0x200000..0x3FA000).
constexpr size_t kTotalBytes = 0x1FA000;
constexpr size_t kBlockSize = 8192;  // the core's LittleFS block
constexpr size_t kPageSize = 256;

struct Handle {
  int refs;
  int fd;  // a file's, else -1
  DIR* dir;  // a directory's, else null
  bool readable;
  bool writable;
  char path[kPathMax];
};

Handle g_handles[kHandles];
bool g_mounted = false;
bool g_auto_format = true;

// The directory that holds the file system; "" without a flash file.
const char* root() {
  static char path[sizeof esp_hil_sim::config().flash_path + 4];
  const char* flash = esp_hil_sim::config().flash_path;
  if (!*flash) return "";
  snprintf(path, sizeof path, "%s.fs", flash);
  return path;
}

// `in` as a path inside the file system ("/a/b"), or false: no "." or ".." parts, no
// name longer than the core's LittleFS takes.
bool normalize(const char* in, char* out) {
  if (!in) return false;
  size_t len = 0;
  out[0] = '\0';
  const char* p = in;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char* end = strchr(p, '/');
    const size_t n = end ? static_cast<size_t>(end - p) : strlen(p);
    if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return false;
    if (n > fs::FS::kMaxName || len + 1 + n >= kPathMax) return false;
    out[len++] = '/';
    memcpy(out + len, p, n);
    len += n;
    out[len] = '\0';
    p += n;
  }
  if (len == 0) strcpy(out, "/");
  return true;
}

void host_path(const char* inside, char* out, size_t size) {
  snprintf(out, size, "%s%s", root(), strcmp(inside, "/") == 0 ? "" : inside);
}

bool make_parents(const char* inside) {
  char host[700];
  host_path(inside, host, sizeof host);
  for (char* slash = strchr(host + strlen(root()) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    const bool ok = ::mkdir(host, 0755) == 0 || errno == EEXIST;
    *slash = '/';
    if (!ok) return false;
  }
  return true;
}

int take_slot() {
  for (int i = 0; i < kHandles; i++) {
    if (g_handles[i].refs == 0) return i;
  }
  esp_hil_sim::log("LittleFS: more than %d files open at once: open() fails", kHandles);
  return -1;
}

void release(int slot) {
  if (slot < 0) return;
  Handle& h = g_handles[slot];
  if (--h.refs > 0) return;
  if (h.fd >= 0) ::close(h.fd);
  if (h.dir) closedir(h.dir);
  h = Handle{};
  h.fd = -1;
}

// Opens `path` with an fopen()-style mode ("r", "w", "a", with "+"); a directory opens
// for listing. -1 when it cannot be opened.
int open_slot(const char* path, const char* mode) {
  char inside[kPathMax];
  if (!g_mounted || !mode || !normalize(path, inside)) return -1;
  const bool plus = strchr(mode, '+') != nullptr;
  int flags;
  switch (mode[0]) {
    case 'r': flags = plus ? O_RDWR : O_RDONLY; break;
    case 'w': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
    case 'a': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
    default: return -1;
  }
  char host[700];
  host_path(inside, host, sizeof host);
  struct stat st;
  const bool is_dir = stat(host, &st) == 0 && S_ISDIR(st.st_mode);
  if (is_dir && mode[0] != 'r') return -1;
  // As the core's LittleFS: writing a file creates the directories above it.
  if ((flags & O_CREAT) && !make_parents(inside)) return -1;
  const int slot = take_slot();
  if (slot < 0) return -1;
  Handle& h = g_handles[slot];
  h.fd = -1;
  if (is_dir) {
    h.dir = opendir(host);
    if (!h.dir) return -1;
  } else {
    h.fd = ::open(host, flags | O_CLOEXEC, 0644);
    if (h.fd < 0) return -1;
  }
  h.refs = 1;
  h.readable = (flags & O_ACCMODE) != O_WRONLY;
  h.writable = (flags & O_ACCMODE) != O_RDONLY;
  snprintf(h.path, sizeof h.path, "%s", inside);
  return slot;
}

// The next entry of a directory handle, "." and ".." skipped; false at the end.
bool next_entry(Handle& h, char* name, size_t size, bool* is_dir) {
  if (!h.dir) return false;
  while (dirent* e = readdir(h.dir)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    const size_t n = strnlen(e->d_name, size - 1);  // a board's names are shorter anyway
    memcpy(name, e->d_name, n);
    name[n] = '\0';
    *is_dir = e->d_type == DT_DIR;
    return true;
  }
  return false;
}

void child_path(const char* dir, const char* name, char* out, size_t size) {
  snprintf(out, size, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name);
}

size_t used_bytes(const char* host) {
  size_t used = 0;
  DIR* d = opendir(host);
  if (!d) return 0;
  while (dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char child[700];
    snprintf(child, sizeof child, "%s/%s", host, e->d_name);
    struct stat st;
    if (stat(child, &st) != 0) continue;
    used += S_ISDIR(st.st_mode)
                ? kBlockSize + used_bytes(child)
                : (static_cast<size_t>(st.st_size) + kBlockSize - 1) / kBlockSize * kBlockSize;
  }
  closedir(d);
  return used;
}

bool remove_tree(const char* host) {
  DIR* d = opendir(host);
  if (!d) return false;
  bool ok = true;
  while (dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char child[700];
    snprintf(child, sizeof child, "%s/%s", host, e->d_name);
    struct stat st;
    if (lstat(child, &st) != 0) continue;
    ok = (S_ISDIR(st.st_mode) ? remove_tree(child) && ::rmdir(child) == 0 : unlink(child) == 0) && ok;
  }
  closedir(d);
  return ok;
}

bool host_of(const char* path, char* host, size_t size) {
  char inside[kPathMax];
  if (!g_mounted || !normalize(path, inside)) return false;
  host_path(inside, host, size);
  return true;
}

}  // namespace

namespace fs {

File::File(const File& other) : Stream(other), slot_(other.slot_) {
  if (slot_ >= 0) g_handles[slot_].refs++;
}

File& File::operator=(const File& other) {
  if (this != &other) {
    if (other.slot_ >= 0) g_handles[other.slot_].refs++;
    release(slot_);
    slot_ = other.slot_;
  }
  return *this;
}

File::~File() { release(slot_); }

void File::close() {
  release(slot_);
  slot_ = -1;
}

size_t File::write(uint8_t byte) { return write(&byte, 1); }

size_t File::write(const uint8_t* buf, size_t size) {
  if (slot_ < 0 || !g_handles[slot_].writable || g_handles[slot_].fd < 0) return 0;
  const ssize_t n = ::write(g_handles[slot_].fd, buf, size);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

int File::availableForWrite() {
  return slot_ >= 0 && g_handles[slot_].writable ? static_cast<int>(kPageSize) : 0;
}

int File::available() {
  if (slot_ < 0 || !g_handles[slot_].readable) return 0;
  const size_t pos = position();
  const size_t total = size();
  return total > pos ? static_cast<int>(total - pos) : 0;
}

int File::read(uint8_t* buf, size_t size) {
  if (slot_ < 0 || !g_handles[slot_].readable || g_handles[slot_].fd < 0) return -1;
  const ssize_t n = ::read(g_handles[slot_].fd, buf, size);
  return n < 0 ? -1 : static_cast<int>(n);
}

int File::read() {
  uint8_t byte;
  return read(&byte, 1) == 1 ? byte : -1;
}

int File::peek() {
  const int byte = read();
  if (byte >= 0) lseek(g_handles[slot_].fd, -1, SEEK_CUR);
  return byte;
}

void File::flush() {}  // writes go to the host's file at once

bool File::seek(uint32_t pos, SeekMode mode) {
  if (slot_ < 0 || g_handles[slot_].fd < 0) return false;
  const int whence = mode == SeekCur ? SEEK_CUR : mode == SeekEnd ? SEEK_END : SEEK_SET;
  const off_t offset = mode == SeekEnd ? -static_cast<off_t>(pos) : static_cast<off_t>(pos);
  return lseek(g_handles[slot_].fd, offset, whence) >= 0;
}

size_t File::position() const {
  if (slot_ < 0 || g_handles[slot_].fd < 0) return 0;
  const off_t at = lseek(g_handles[slot_].fd, 0, SEEK_CUR);
  return at < 0 ? 0 : static_cast<size_t>(at);
}

size_t File::size() const {
  struct stat st;
  if (slot_ < 0 || g_handles[slot_].fd < 0 || fstat(g_handles[slot_].fd, &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

const char* File::name() const {
  if (slot_ < 0) return nullptr;
  const char* path = g_handles[slot_].path;
  const char* slash = strrchr(path, '/');
  return slash && slash[1] ? slash + 1 : path;
}

const char* File::fullName() const { return slot_ >= 0 ? g_handles[slot_].path : nullptr; }

bool File::truncate(uint32_t size) {
  return slot_ >= 0 && g_handles[slot_].writable && g_handles[slot_].fd >= 0 &&
         ftruncate(g_handles[slot_].fd, size) == 0;
}

bool File::isFile() const { return slot_ >= 0 && g_handles[slot_].fd >= 0; }
bool File::isDirectory() const { return slot_ >= 0 && g_handles[slot_].dir != nullptr; }

File File::openNextFile() {
  if (slot_ < 0) return File();
  Handle& h = g_handles[slot_];
  char name[64];
  bool is_dir = false;
  if (!next_entry(h, name, sizeof name, &is_dir)) return File();
  char path[kPathMax + 64];
  child_path(h.path, name, path, sizeof path);
  return File(open_slot(path, "r"));
}

void File::rewindDirectory() {
  if (slot_ >= 0 && g_handles[slot_].dir) rewinddir(g_handles[slot_].dir);
}

File Dir::openFile(const char* mode) {
  if (!has_entry_ || !dir_) return File();
  char path[kPathMax + 64];
  child_path(dir_.fullName(), entry_, path, sizeof path);
  return File(open_slot(path, mode));
}

String Dir::fileName() { return has_entry_ ? String(entry_) : String(); }

size_t Dir::fileSize() {
  if (!has_entry_ || entry_is_dir_) return 0;
  File f = openFile("r");
  return f ? f.size() : 0;
}

bool Dir::isFile() const { return has_entry_ && !entry_is_dir_; }
bool Dir::isDirectory() const { return has_entry_ && entry_is_dir_; }

bool Dir::next() {
  has_entry_ = dir_ && next_entry(g_handles[dir_.slot_], entry_, sizeof entry_, &entry_is_dir_);
  return has_entry_;
}

bool Dir::rewind() {
  if (!dir_) return false;
  dir_.rewindDirectory();
  has_entry_ = false;
  return true;
}

bool FS::setConfig(const FSConfig& cfg) {
  if (g_mounted) return false;  // as the core: configure before begin()
  g_auto_format = cfg._autoFormat;
  return true;
}

bool FS::begin() {
  if (g_mounted) return true;
  if (!*root()) {
    esp_hil_sim::log("LittleFS.begin(): no flash file (ESP_HIL_FLASH): no file system");
    return false;
  }
  struct stat st;
  if (stat(root(), &st) != 0) {
    // Never formatted: the core formats it when autoFormat is on (the default).
    if (!g_auto_format || ::mkdir(root(), 0755) != 0) return false;
  }
  g_mounted = true;
  return true;
}

void FS::end() { g_mounted = false; }

bool FS::format() {
  if (!*root()) return false;
  struct stat st;
  if (stat(root(), &st) != 0) return ::mkdir(root(), 0755) == 0;
  return remove_tree(root());
}

bool FS::info(FSInfo& info) {
  if (!g_mounted) return false;
  info.totalBytes = kTotalBytes;
  info.usedBytes = 2 * kBlockSize + used_bytes(root());  // two blocks of superblock
  info.blockSize = kBlockSize;
  info.pageSize = kPageSize;
  info.maxOpenFiles = kHandles;
  info.maxPathLength = kMaxName + 1;
  return true;
}

File FS::open(const char* path, const char* mode) { return File(open_slot(path, mode)); }

bool FS::exists(const char* path) {
  char host[700];
  struct stat st;
  return host_of(path, host, sizeof host) && stat(host, &st) == 0;
}

Dir FS::openDir(const char* path) {
  Dir d;
  d.dir_ = open(path, "r");
  if (!d.dir_.isDirectory()) d.dir_ = File();
  return d;
}

bool FS::remove(const char* path) {
  char host[700];
  return host_of(path, host, sizeof host) && unlink(host) == 0;
}

bool FS::rename(const char* from, const char* to) {
  char a[700];
  char b[700];
  char inside[kPathMax];
  return host_of(from, a, sizeof a) && host_of(to, b, sizeof b) && normalize(to, inside) &&
         make_parents(inside) && ::rename(a, b) == 0;
}

bool FS::mkdir(const char* path) {
  char host[700];
  return host_of(path, host, sizeof host) && (::mkdir(host, 0755) == 0 || errno == EEXIST);
}

bool FS::rmdir(const char* path) {
  char host[700];
  return host_of(path, host, sizeof host) && ::rmdir(host) == 0;
}

bool FS::gc() { return g_mounted; }
bool FS::check() { return g_mounted; }

}  // namespace fs
