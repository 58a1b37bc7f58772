// SPI (master) of the twin: the core's SPIClass on a simulated bus. Devices are register
// maps the test attaches to a chip-select GPIO (harness/sim/spi.py, device.spi), shared
// through "<ESP_HIL_FLASH>.spi" (layout in SPI.cpp). A transaction starts when the sketch
// drives the device's chip select low (digitalWrite; with setHwCs(true), each transfer
// call on GPIO15): its first byte is the register, bit 7 set for a read (the convention of
// BME280, MPU-9250, ADXL345, ...); then each byte reads or writes the next register, the
// pointer wrapping at 128. With no device selected MISO reads 0xFF (pulled up).
#ifndef _SPI_H_INCLUDED
#define _SPI_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define SPI_HAS_TRANSACTION 1

const uint8_t SPI_MODE0 = 0x00;
const uint8_t SPI_MODE1 = 0x01;
const uint8_t SPI_MODE2 = 0x10;
const uint8_t SPI_MODE3 = 0x11;

class SPISettings {
 public:
  SPISettings() : _clock(1000000), _bitOrder(0), _dataMode(SPI_MODE0) {}
  SPISettings(uint32_t clock, uint8_t bitOrder, uint8_t dataMode)
      : _clock(clock), _bitOrder(bitOrder), _dataMode(dataMode) {}
  uint32_t _clock;
  uint8_t _bitOrder;
  uint8_t _dataMode;
};

class SPIClass {
 public:
  bool pins(int8_t sck, int8_t miso, int8_t mosi, int8_t ss);
  void begin();
  void end();
  void setHwCs(bool use);
  void setBitOrder(uint8_t bitOrder);
  void setDataMode(uint8_t dataMode);
  void setFrequency(uint32_t freq);
  void setClockDivider(uint32_t clockDiv);
  void beginTransaction(SPISettings settings);
  void endTransaction();
  uint8_t transfer(uint8_t data);
  uint16_t transfer16(uint16_t data);
  void transfer(void* buf, uint16_t count);
  void write(uint8_t data);
  void write16(uint16_t data);
  void write16(uint16_t data, bool msb);
  void write32(uint32_t data);
  void write32(uint32_t data, bool msb);
  void writeBytes(const uint8_t* data, uint32_t size);
  void transferBytes(const uint8_t* out, uint8_t* in, uint32_t size);

 private:
  uint8_t exchange(uint8_t out);
  bool hw_cs_ = false;
  bool msb_first_ = true;
  uint32_t hw_calls_ = 0;  // with setHwCs: each transfer call is a transaction
};

extern SPIClass SPI;

#endif  // _SPI_H_INCLUDED
