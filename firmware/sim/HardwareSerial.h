// Serial: the process's stdin (UART RX) and stdout (UART TX), raw bytes.
#pragma once

#include "Stream.h"

enum SerialConfig { SERIAL_8N1 = 0x1c };
enum SerialMode { SERIAL_FULL = 0, SERIAL_RX_ONLY = 1, SERIAL_TX_ONLY = 2 };

class HardwareSerial : public Stream {
 public:
  // Any baud rate is accepted: the host pipe has no line speed.
  void begin(unsigned long baud) { begin(baud, SERIAL_8N1); }
  void begin(unsigned long baud, SerialConfig config, SerialMode mode = SERIAL_FULL);
  void end() {}
  void setDebugOutput(bool) {}
  unsigned long baudRate() const { return baud_; }
  // The RX buffer has a fixed size here (256, the core's default): returns that size.
  size_t setRxBufferSize(size_t) { return 256; }

  int available() override;
  int read() override;
  int peek() override;
  size_t read(uint8_t* buf, size_t size);
  size_t read(char* buf, size_t size) { return read(reinterpret_cast<uint8_t*>(buf), size); }

  size_t write(uint8_t c) override { return write(&c, 1); }
  size_t write(const uint8_t* buf, size_t size) override;
  using Print::write;
  int availableForWrite() override { return 128; }
  // Writes go straight to fd 1, so there is nothing buffered to flush.
  void flush() override {}

  explicit operator bool() const { return true; }

 private:
  unsigned long baud_ = 0;
};

extern HardwareSerial Serial;
