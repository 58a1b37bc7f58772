#include "HardwareSerial.h"

#include "sim_internal.h"

HardwareSerial Serial;

void HardwareSerial::begin(unsigned long baud, SerialConfig, SerialMode) { baud_ = baud; }

int HardwareSerial::available() {
  esp_hil_sim::serial_pump();
  return static_cast<int>(esp_hil_sim::serial_rx_available());
}

int HardwareSerial::read() {
  if (esp_hil_sim::serial_rx_available() == 0) esp_hil_sim::serial_pump();
  return esp_hil_sim::serial_rx_read();
}

int HardwareSerial::peek() {
  if (esp_hil_sim::serial_rx_available() == 0) esp_hil_sim::serial_pump();
  return esp_hil_sim::serial_rx_peek();
}

size_t HardwareSerial::read(uint8_t* buf, size_t size) {
  if (esp_hil_sim::serial_rx_available() < size) esp_hil_sim::serial_pump();
  size_t n = 0;
  while (n < size && esp_hil_sim::serial_rx_available() > 0) {
    buf[n++] = static_cast<uint8_t>(esp_hil_sim::serial_rx_read());
  }
  return n;
}

size_t HardwareSerial::write(const uint8_t* buf, size_t size) {
  return esp_hil_sim::serial_tx_write(buf, size);
}
