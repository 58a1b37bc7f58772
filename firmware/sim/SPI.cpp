// The twin's SPI bus (SPI.h). Its devices live in a 2080-byte file shared (mmap,
// MAP_SHARED) with the harness, "<ESP_HIL_FLASH>.spi": eight slots the test fills
// (harness/sim/spi.py; the same slot layout as the I2C bus, keyed by the chip-select GPIO
// instead of an address). A slot's GPIO and `attached` are the test's; its register
// pointer and transaction state are the firmware's; both sides write registers.
#include "SPI.h"

#include <stddef.h>

#include "Arduino.h"
#include "sim_internal.h"

namespace {

constexpr size_t kSlots = 8;
constexpr uint8_t kHwCs = 15;  // the core's hardware chip select (GPIO15, D8)
constexpr uint8_t kIdle = 0xFF;  // MISO when nothing drives it

struct Slot {
  uint8_t cs;  // test: the chip-select GPIO
  uint8_t attached;  // test: 1 = wired (written last when attaching)
  uint8_t pointer;  // firmware: the register the next byte reads or writes
  uint8_t state;  // firmware: kCommand, kRead or kWrite
  uint8_t reg[256];  // both (an SPI register map uses 0..127)
};
struct BusFile {
  Slot slot[kSlots];
};
static_assert(sizeof(Slot) == 260 && sizeof(BusFile) == 2080, "spi file layout");

constexpr uint8_t kCommand = 0;  // the next byte names the register (bit 7: read)
constexpr uint8_t kRead = 1;
constexpr uint8_t kWrite = 2;

BusFile g_local;
uint32_t g_seen_falls[kSlots];  // g_falls of the slot's GPIO at its last byte

volatile BusFile* bus() {
  static volatile BusFile* g_bus = nullptr;
  if (g_bus) return g_bus;
  void* map = esp_hil_sim::world_file(".spi", sizeof(BusFile), true,
                                      "the test cannot attach SPI devices");
  g_bus = map ? static_cast<volatile BusFile*>(map) : &g_local;
  for (size_t i = 0; i < kSlots; i++) {  // power-on
    g_bus->slot[i].pointer = 0;
    g_bus->slot[i].state = kCommand;
  }
  return g_bus;
}

uint8_t reverse_bits(uint8_t b) {
  b = static_cast<uint8_t>((b & 0xF0) >> 4 | (b & 0x0F) << 4);
  b = static_cast<uint8_t>((b & 0xCC) >> 2 | (b & 0x33) << 2);
  return static_cast<uint8_t>((b & 0xAA) >> 1 | (b & 0x55) << 1);
}

}  // namespace

SPIClass SPI;

bool SPIClass::pins(int8_t, int8_t, int8_t, int8_t) { return true; }
void SPIClass::begin() {
  bus();
  msb_first_ = true;
}
void SPIClass::end() {}
void SPIClass::setHwCs(bool use) { hw_cs_ = use; }
void SPIClass::setBitOrder(uint8_t bitOrder) { msb_first_ = bitOrder == MSBFIRST; }
void SPIClass::setDataMode(uint8_t) {}
void SPIClass::setFrequency(uint32_t) {}
void SPIClass::setClockDivider(uint32_t) {}
void SPIClass::beginTransaction(SPISettings settings) { setBitOrder(settings._bitOrder); }
void SPIClass::endTransaction() {}

// One byte each way with the device whose chip select is low, as its register map
// answers. A slot starts a new transaction when its chip select fell since its last byte.
uint8_t SPIClass::exchange(uint8_t out) {
  if (!msb_first_) out = reverse_bits(out);
  volatile BusFile* b = bus();
  uint8_t in = kIdle;
  for (size_t i = 0; i < kSlots; i++) {
    volatile Slot& s = b->slot[i];
    if (s.attached != 1 || s.cs > 16) continue;
    const uint32_t falls = s.cs == kHwCs && hw_cs_ ? hw_calls_ : esp_hil_sim::g_falls[s.cs];
    const bool selected = s.cs == kHwCs && hw_cs_ ? true : esp_hil_sim::pin_output(s.cs) == 0;
    if (!selected) continue;
    if (falls != g_seen_falls[i]) s.state = kCommand;  // a new transaction
    g_seen_falls[i] = falls;
    if (s.state == kCommand) {
      s.pointer = out & 0x7F;
      s.state = (out & 0x80) ? kRead : kWrite;
    } else if (s.state == kRead) {
      in = s.reg[s.pointer];
      s.pointer = (s.pointer + 1) & 0x7F;
    } else {
      s.reg[s.pointer] = out;
      s.pointer = (s.pointer + 1) & 0x7F;
    }
  }
  return msb_first_ ? in : reverse_bits(in);
}

uint8_t SPIClass::transfer(uint8_t data) {
  if (hw_cs_) hw_calls_++;
  return exchange(data);
}

uint16_t SPIClass::transfer16(uint16_t data) {
  if (hw_cs_) hw_calls_++;
  // As the core: the most significant byte first in MSBFIRST order, else the least.
  const uint8_t hi = static_cast<uint8_t>(data >> 8);
  const uint8_t lo = static_cast<uint8_t>(data);
  if (msb_first_) {
    const uint8_t a = exchange(hi);
    return static_cast<uint16_t>(a << 8 | exchange(lo));
  }
  const uint8_t a = exchange(lo);
  return static_cast<uint16_t>(exchange(hi) << 8 | a);
}

void SPIClass::transfer(void* buf, uint16_t count) {
  transferBytes(static_cast<uint8_t*>(buf), static_cast<uint8_t*>(buf), count);
}

void SPIClass::transferBytes(const uint8_t* out, uint8_t* in, uint32_t size) {
  if (hw_cs_) hw_calls_++;
  for (uint32_t i = 0; i < size; i++) {
    const uint8_t got = exchange(out ? out[i] : kIdle);
    if (in) in[i] = got;
  }
}

void SPIClass::write(uint8_t data) { transfer(data); }
void SPIClass::write16(uint16_t data) { transfer16(data); }
void SPIClass::write16(uint16_t data, bool msb) {
  const bool was = msb_first_;
  msb_first_ = msb;
  transfer16(data);
  msb_first_ = was;
}
void SPIClass::write32(uint32_t data) { write32(data, msb_first_); }
void SPIClass::write32(uint32_t data, bool msb) {
  uint8_t bytes[4];
  for (int i = 0; i < 4; i++) {
    bytes[i] = static_cast<uint8_t>(msb ? data >> (24 - 8 * i) : data >> (8 * i));
  }
  writeBytes(bytes, sizeof bytes);
}
void SPIClass::writeBytes(const uint8_t* data, uint32_t size) { transferBytes(data, nullptr, size); }
