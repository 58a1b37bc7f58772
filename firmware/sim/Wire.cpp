// The twin's I2C bus (Wire.h). Its devices live in a 2080-byte file shared (mmap,
// MAP_SHARED) with the harness, "<ESP_HIL_FLASH>.i2c": eight slots the test fills
// (harness/sim/i2c.py; keep the layout in step). A slot's address and `attached` are
// the test's; its register pointer is the firmware's; both sides write registers (the
// test its readings, the sketch its configuration). Wiring stays across resets, as on a
// bench; the pointers go back to 0 at power-on.
#include "Wire.h"

#include <stddef.h>
#include <string.h>

#include "sim_internal.h"

namespace {

constexpr size_t kSlots = 8;

struct Slot {
  uint8_t address;   // test: 7-bit address
  uint8_t attached;  // test: 1 = answers at `address` (written last when attaching)
  uint8_t pointer;   // firmware: the register the next transfer starts at
  uint8_t pad;
  uint8_t reg[256];  // both
};
struct BusFile {
  Slot slot[kSlots];
};
static_assert(sizeof(Slot) == 260 && sizeof(BusFile) == 2080, "i2c file layout");
static_assert(offsetof(Slot, reg) == 4, "i2c file layout");

BusFile g_local;  // without a flash file: an empty bus nobody outside sees

volatile BusFile* bus() {
  static volatile BusFile* g_bus = nullptr;
  if (g_bus) return g_bus;
  void* map = esp_hil_sim::world_file(".i2c", sizeof(BusFile), true,
                                      "the test cannot attach I2C devices");
  g_bus = map ? static_cast<volatile BusFile*>(map) : &g_local;
  for (size_t i = 0; i < kSlots; i++) g_bus->slot[i].pointer = 0;  // power-on
  return g_bus;
}

volatile Slot* device_at(uint8_t address) {
  volatile BusFile* b = bus();
  for (size_t i = 0; i < kSlots; i++) {
    volatile Slot& s = b->slot[i];
    if (s.attached == 1 && s.address == address) return &s;
  }
  return nullptr;
}

}  // namespace

TwoWire Wire;

void TwoWire::begin() { bus(); }
void TwoWire::begin(int, int) { bus(); }
void TwoWire::setClock(uint32_t) {}
void TwoWire::setClockStretchLimit(uint32_t) {}

void TwoWire::beginTransmission(uint8_t address) {
  transmitting_ = true;
  tx_address_ = address;
  tx_len_ = 0;
}

void TwoWire::beginTransmission(int address) { beginTransmission(static_cast<uint8_t>(address)); }

uint8_t TwoWire::endTransmission(uint8_t) {
  transmitting_ = false;
  const size_t len = tx_len_;
  tx_len_ = 0;
  volatile Slot* s = device_at(tx_address_);
  if (!s) return 2;  // the core's "received NACK on transmit of address"
  if (len == 0) return 0;  // an address probe
  uint8_t at = tx_[0];
  for (size_t i = 1; i < len; i++) s->reg[at++] = tx_[i];
  s->pointer = at;
  return 0;
}

uint8_t TwoWire::endTransmission() { return endTransmission(static_cast<uint8_t>(1)); }

size_t TwoWire::requestFrom(uint8_t address, size_t size, bool) {
  if (size > I2C_BUFFER_LENGTH) size = I2C_BUFFER_LENGTH;
  rx_at_ = 0;
  rx_len_ = 0;
  volatile Slot* s = device_at(address);
  if (!s) return 0;
  uint8_t at = s->pointer;
  for (size_t i = 0; i < size; i++) rx_[i] = s->reg[at++];
  s->pointer = at;
  rx_len_ = size;
  return size;
}

uint8_t TwoWire::requestFrom(uint8_t address, uint8_t quantity) {
  return static_cast<uint8_t>(requestFrom(address, static_cast<size_t>(quantity), true));
}
uint8_t TwoWire::requestFrom(uint8_t address, uint8_t quantity, uint8_t sendStop) {
  return static_cast<uint8_t>(requestFrom(address, static_cast<size_t>(quantity), sendStop != 0));
}
uint8_t TwoWire::requestFrom(int address, int quantity) {
  return requestFrom(static_cast<uint8_t>(address), static_cast<uint8_t>(quantity));
}
uint8_t TwoWire::requestFrom(int address, int quantity, int sendStop) {
  return requestFrom(static_cast<uint8_t>(address), static_cast<uint8_t>(quantity),
                     static_cast<uint8_t>(sendStop));
}

uint8_t TwoWire::status() { return 0; }  // the core's I2C_OK: the lines are free

size_t TwoWire::write(uint8_t data) {
  // As the core: bytes past the buffer are refused; outside a transmission (slave mode,
  // not simulated) nothing is sent.
  if (!transmitting_ || tx_len_ >= I2C_BUFFER_LENGTH) return 0;
  tx_[tx_len_++] = data;
  return 1;
}

size_t TwoWire::write(const uint8_t* data, size_t quantity) {
  for (size_t i = 0; i < quantity; i++) {
    if (!write(data[i])) return i;
  }
  return quantity;
}

int TwoWire::available() { return static_cast<int>(rx_len_ - rx_at_); }
int TwoWire::read() { return rx_at_ < rx_len_ ? rx_[rx_at_++] : -1; }
int TwoWire::peek() { return rx_at_ < rx_len_ ? rx_[rx_at_] : -1; }
void TwoWire::flush() {
  rx_at_ = rx_len_ = 0;
  tx_len_ = 0;
}
