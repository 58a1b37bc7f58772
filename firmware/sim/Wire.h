// Wire (I2C master) of the twin: the core's TwoWire API on a simulated bus. Devices on the
// bus are register maps the test attaches (harness/sim/i2c.py, device.i2c), shared through
// "<ESP_HIL_FLASH>.i2c" (layout in Wire.cpp). A write sets a device's register pointer
// from its first byte and stores the rest from there on; a read returns bytes from the
// pointer on; both advance it (wrapping at 256), as most sensors' register maps do. An
// address nobody answers NACKs, as on a board with nothing wired: endTransmission() 2,
// requestFrom() 0. Slave mode (onReceive/onRequest) is not simulated.
#ifndef TwoWire_h
#define TwoWire_h

#include <stddef.h>
#include <stdint.h>

#include "Stream.h"

#ifndef I2C_BUFFER_LENGTH
#define BUFFER_LENGTH 128
#define I2C_BUFFER_LENGTH BUFFER_LENGTH
#endif

class TwoWire : public Stream {
 public:
  void begin();
  void begin(int sda, int scl);
  void setClock(uint32_t frequency);
  void setClockStretchLimit(uint32_t limit);
  void beginTransmission(uint8_t address);
  void beginTransmission(int address);
  uint8_t endTransmission(uint8_t sendStop);
  uint8_t endTransmission();
  size_t requestFrom(uint8_t address, size_t size, bool sendStop);
  uint8_t requestFrom(uint8_t address, uint8_t quantity);
  uint8_t requestFrom(uint8_t address, uint8_t quantity, uint8_t sendStop);
  uint8_t requestFrom(int address, int quantity);
  uint8_t requestFrom(int address, int quantity, int sendStop);
  uint8_t status();

  size_t write(uint8_t data) override;
  size_t write(const uint8_t* data, size_t quantity) override;
  int available() override;
  int read() override;
  int peek() override;
  void flush() override;
  using Print::write;

 private:
  uint8_t rx_[I2C_BUFFER_LENGTH] = {};
  size_t rx_len_ = 0;
  size_t rx_at_ = 0;
  uint8_t tx_[I2C_BUFFER_LENGTH] = {};
  size_t tx_len_ = 0;
  uint8_t tx_address_ = 0;
  bool transmitting_ = false;
};

extern TwoWire Wire;

#endif  // TwoWire_h
