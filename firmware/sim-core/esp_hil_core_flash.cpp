// The SDK's raw flash calls (spi_flash.h), which the core's mock lacks: the EspHil agent
// keeps the link's key in a flash sector of its own with them (docs/console.md). Here the
// flash is the file `flash` in the instance's working directory (beside `eeprom` and
// `station_config`), so the key survives a reset and each instance has its own. As on the
// chip: word-aligned address, size and buffer; a write only clears bits; erased reads 0xFF.
#include <spi_flash.h>
#include <stdio.h>
#include <string.h>

namespace {

constexpr const char* kFlashFile = "flash";
constexpr uint32_t kFlashSize = 4u * 1024u * 1024u;  // the boards' 4 MB

bool aligned(uint32_t addr, const void* buf, uint32_t size) {
  return addr % 4 == 0 && size % 4 == 0 && reinterpret_cast<uintptr_t>(buf) % 4 == 0 &&
         addr <= kFlashSize && size <= kFlashSize - addr;
}

// Reads what the file holds at `addr` into `out` (pre-filled 0xFF: beyond the file is erased).
void readFile(FILE* f, uint32_t addr, uint8_t* out, uint32_t size) {
  memset(out, 0xFF, size);
  if (fseek(f, static_cast<long>(addr), SEEK_SET) == 0) {
    const size_t got = fread(out, 1, size, f);
    (void)got;  // short: the rest stays erased
  }
}

// Writes `size` bytes at `addr` as NOR flash does: old & new (erase: all 0xFF, `program` false).
bool writeFile(uint32_t addr, const uint8_t* data, uint32_t size, bool program) {
  FILE* f = fopen(kFlashFile, "r+b");
  if (f == nullptr) f = fopen(kFlashFile, "w+b");
  if (f == nullptr) return false;
  bool ok = true;
  uint8_t cell[256];
  for (uint32_t done = 0; ok && done < size; done += sizeof cell) {
    const uint32_t n = size - done < sizeof cell ? size - done : static_cast<uint32_t>(sizeof cell);
    readFile(f, addr + done, cell, n);
    for (uint32_t i = 0; i < n; ++i) cell[i] = program ? (cell[i] & data[done + i]) : 0xFF;
    ok = fseek(f, static_cast<long>(addr + done), SEEK_SET) == 0 && fwrite(cell, 1, n, f) == n;
  }
  return fclose(f) == 0 && ok;
}

}  // namespace

extern "C" {

SpiFlashOpResult spi_flash_read(uint32 src_addr, uint32* des_addr, uint32 size) {
  if (!aligned(src_addr, des_addr, size)) return SPI_FLASH_RESULT_ERR;
  uint8_t* out = reinterpret_cast<uint8_t*>(des_addr);
  FILE* f = fopen(kFlashFile, "rb");
  if (f == nullptr) {
    memset(out, 0xFF, size);  // never written: an erased chip
    return SPI_FLASH_RESULT_OK;
  }
  readFile(f, src_addr, out, size);
  fclose(f);
  return SPI_FLASH_RESULT_OK;
}

SpiFlashOpResult spi_flash_erase_sector(uint16 sec) {
  const uint32_t addr = static_cast<uint32_t>(sec) * SPI_FLASH_SEC_SIZE;
  if (addr >= kFlashSize) return SPI_FLASH_RESULT_ERR;
  return writeFile(addr, nullptr, SPI_FLASH_SEC_SIZE, false) ? SPI_FLASH_RESULT_OK
                                                             : SPI_FLASH_RESULT_ERR;
}

SpiFlashOpResult spi_flash_write(uint32 des_addr, uint32* src_addr, uint32 size) {
  if (!aligned(des_addr, src_addr, size)) return SPI_FLASH_RESULT_ERR;
  return writeFile(des_addr, reinterpret_cast<const uint8_t*>(src_addr), size, true)
             ? SPI_FLASH_RESULT_OK
             : SPI_FLASH_RESULT_ERR;
}

}  // extern "C"
