// The twin's flash: the 4 MiB file ESP_HIL_FLASH that EEPROM, the station config and the
// SDK's raw flash calls (spi_flash.h) share, at the offsets of a 4 MB board.
#include "spi_flash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_internal.h"

namespace {

using esp_hil_sim::kEepromSector;
using esp_hil_sim::kFlashSize;

bool write_all(int fd, const uint8_t* buf, size_t len, off_t offset) {
  while (len > 0) {
    ssize_t n = pwrite(fd, buf, len, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

// Reads what the file has; the rest (a short file) stays as the caller filled it.
void read_some(int fd, uint8_t* buf, size_t len, off_t offset) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, buf + got, len - got, offset + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
}

// Creates an erased (0xFF) 4 MiB flash file if none exists. Built under a
// temporary name and linked into place, so a reader never sees half a file
// and an existing file is never replaced.
bool create_flash(const char* path) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, static_cast<int>(getpid()));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  uint8_t erased[kEepromSector];
  memset(erased, 0xFF, sizeof erased);
  bool ok = true;
  for (size_t off = 0; ok && off < kFlashSize; off += sizeof erased) {
    ok = write_all(fd, erased, sizeof erased, static_cast<off_t>(off));
  }
  ok = ok && fsync(fd) == 0;
  close(fd);
  if (ok && link(tmp, path) != 0 && errno != EEXIST) ok = false;
  unlink(tmp);
  return ok;
}

// The SDK's rule for spi_flash_read/write: word-aligned address, size and buffer, inside
// the chip. The twin refuses what the chip would get wrong.
bool aligned(const char* what, uint32_t addr, const void* buf, uint32_t size) {
  const bool ok = addr % 4 == 0 && size % 4 == 0 && reinterpret_cast<uintptr_t>(buf) % 4 == 0 &&
                  addr <= kFlashSize && size <= kFlashSize - addr;
  if (!ok) {
    esp_hil_sim::log("%s(0x%X, %u): address, size and buffer must be 4-byte aligned, inside 4 MiB",
                     what, static_cast<unsigned>(addr), static_cast<unsigned>(size));
  }
  return ok;
}

}  // namespace

namespace esp_hil_sim {

int flash_open(int flags) {
  const char* path = esp_hil_sim::config().flash_path;
  if (!*path) return -1;
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (!create_flash(path)) {
      esp_hil_sim::log("cannot create flash file %s: %s", path, strerror(errno));
      return -1;
    }
    fd = open(path, flags | O_CLOEXEC);
  }
  if (fd < 0) esp_hil_sim::log("cannot open flash file %s: %s", path, strerror(errno));
  return fd;
}

void* world_file(const char* suffix, size_t size, bool writable, const char* loses) {
  const char* flash = config().flash_path;
  if (!*flash) return nullptr;
  char path[sizeof config().flash_path + 8];
  snprintf(path, sizeof path, "%s%s", flash, suffix);
  const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 ||
      (st.st_size < static_cast<off_t>(size) && ftruncate(fd, static_cast<off_t>(size)) != 0)) {
    log("%s unusable (%s): %s", path, strerror(errno), loses);
    if (fd >= 0) close(fd);
    return nullptr;
  }
  void* map = mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    log("mmap %s failed (%s): %s", path, strerror(errno), loses);
    return nullptr;
  }
  return map;
}

bool flash_write_sector(uint32_t offset, const uint8_t* data, size_t len) {
  if (len > kEepromSector || offset % kEepromSector != 0 || offset + kEepromSector > kFlashSize) {
    return false;
  }
  int fd = flash_open(O_RDWR);
  if (fd < 0) return false;
  uint8_t sector[kEepromSector];
  memset(sector, 0xFF, sizeof sector);
  if (len > 0) memcpy(sector, data, len);
  const bool ok = write_all(fd, sector, sizeof sector, static_cast<off_t>(offset)) && fsync(fd) == 0;
  if (!ok) log("flash write at 0x%X failed: %s", static_cast<unsigned>(offset), strerror(errno));
  close(fd);
  return ok;
}

}  // namespace esp_hil_sim

// Without ESP_HIL_FLASH the chip reads erased and every erase or write fails (as EEPROM's
// commit() does).
extern "C" SpiFlashOpResult spi_flash_read(uint32_t src_addr, uint32_t* des_addr, uint32_t size) {
  if (!aligned("spi_flash_read", src_addr, des_addr, size)) return SPI_FLASH_RESULT_ERR;
  uint8_t* out = reinterpret_cast<uint8_t*>(des_addr);
  memset(out, 0xFF, size);
  if (!*esp_hil_sim::config().flash_path) return SPI_FLASH_RESULT_OK;
  const int fd = esp_hil_sim::flash_open(O_RDONLY);
  if (fd < 0) return SPI_FLASH_RESULT_ERR;
  read_some(fd, out, size, static_cast<off_t>(src_addr));
  close(fd);
  return SPI_FLASH_RESULT_OK;
}

extern "C" SpiFlashOpResult spi_flash_erase_sector(uint16_t sec) {
  const uint32_t offset = static_cast<uint32_t>(sec) * SPI_FLASH_SEC_SIZE;
  return esp_hil_sim::flash_write_sector(offset, nullptr, 0) ? SPI_FLASH_RESULT_OK
                                                              : SPI_FLASH_RESULT_ERR;
}

extern "C" SpiFlashOpResult spi_flash_write(uint32_t des_addr, uint32_t* src_addr, uint32_t size) {
  if (!aligned("spi_flash_write", des_addr, src_addr, size)) return SPI_FLASH_RESULT_ERR;
  const int fd = esp_hil_sim::flash_open(O_RDWR);
  if (fd < 0) return SPI_FLASH_RESULT_ERR;
  const uint8_t* in = reinterpret_cast<const uint8_t*>(src_addr);
  uint8_t cell[256];  // NOR flash: programming only clears bits, so old & new
  bool ok = true;
  for (uint32_t done = 0; ok && done < size; done += sizeof cell) {
    const size_t n = size - done < sizeof cell ? size - done : sizeof cell;
    const off_t at = static_cast<off_t>(des_addr + done);
    memset(cell, 0xFF, n);
    read_some(fd, cell, n, at);
    for (size_t i = 0; i < n; ++i) cell[i] &= in[done + i];
    ok = write_all(fd, cell, n, at);
  }
  ok = ok && fsync(fd) == 0;
  if (!ok) esp_hil_sim::log("flash write at 0x%X failed: %s", static_cast<unsigned>(des_addr), strerror(errno));
  close(fd);
  return ok ? SPI_FLASH_RESULT_OK : SPI_FLASH_RESULT_ERR;
}
