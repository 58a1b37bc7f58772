// Arduino core API for the esp-hil host build: the subset of the ESP8266
// Arduino core 3.x that the test firmware uses, implemented on POSIX.
#pragma once

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "Esp.h"
#include "HardwareSerial.h"
#include "IPAddress.h"
#include "Print.h"
#include "Stream.h"
#include "WString.h"
#include "pgmspace.h"

#ifndef ESP_HIL_SIM
#define ESP_HIL_SIM 1
#endif
#ifndef ESP8266
#define ESP8266 1
#endif
#define ARDUINO_ARCH_ESP8266 1

#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x00
#define OUTPUT 0x01
#define INPUT_PULLUP 0x02
#define LED_BUILTIN 2

#define ICACHE_RAM_ATTR
#define IRAM_ATTR
#define ICACHE_FLASH_ATTR

class __FlashStringHelper;
#define FPSTR(p) (reinterpret_cast<const __FlashStringHelper*>(p))
#define F(s) FPSTR(PSTR(s))

using std::max;
using std::min;

template <typename T, typename L, typename H>
constexpr T constrain(T v, L lo, H hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

typedef uint8_t byte;
typedef bool boolean;

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
// Lets the "system" run: on the host, moves pending console input into Serial.
void yield();

// GPIO does not exist on the host: writes are ignored, reads give LOW.
inline void pinMode(uint8_t, uint8_t) {}
inline void digitalWrite(uint8_t, uint8_t) {}
inline int digitalRead(uint8_t) { return LOW; }

void setup();
void loop();
