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
#include <time.h>

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

// Pin modes, interrupt modes and the NodeMCU pin names: the core's values
// (cores/esp8266/Arduino.h, variants/nodemcu/pins_arduino.h, variants/generic/common.h).
#define INPUT 0x00
#define INPUT_PULLUP 0x02
#define INPUT_PULLDOWN_16 0x04
#define OUTPUT 0x01
#define OUTPUT_OPEN_DRAIN 0x03

#define RISING 0x01
#define FALLING 0x02
#define CHANGE 0x03
#define ONLOW 0x04
#define ONHIGH 0x05
#define ONLOW_WE 0x0C
#define ONHIGH_WE 0x0D

#define LSBFIRST 0
#define MSBFIRST 1

#define NOT_A_PIN -1
#define NOT_A_PORT -1
#define NOT_AN_INTERRUPT -1
#define NOT_ON_TIMER 0

#define EXTERNAL_NUM_INTERRUPTS 16
#define NUM_DIGITAL_PINS 17
#define NUM_ANALOG_INPUTS 1
#define isFlashInterfacePin(p) ((p) >= 6 && (p) <= 11)
#define analogInputToDigitalPin(p) ((p > 0) ? NOT_A_PIN : 0)
#define digitalPinToInterrupt(p) (((p) < EXTERNAL_NUM_INTERRUPTS) ? (p) : NOT_AN_INTERRUPT)
#define digitalPinHasPWM(p) (((p) < NUM_DIGITAL_PINS && !isFlashInterfacePin(p)) ? 1 : 0)

#define PIN_WIRE_SDA (4)
#define PIN_WIRE_SCL (5)
#define PIN_SPI_SS (15)
#define PIN_SPI_MOSI (13)
#define PIN_SPI_MISO (12)
#define PIN_SPI_SCK (14)
#define PIN_A0 (17)
#ifndef LED_BUILTIN
#define LED_BUILTIN 2
#endif
#define LED_BUILTIN_AUX 16

static const uint8_t SDA = PIN_WIRE_SDA;
static const uint8_t SCL = PIN_WIRE_SCL;
static const uint8_t SS = PIN_SPI_SS;
static const uint8_t MOSI = PIN_SPI_MOSI;
static const uint8_t MISO = PIN_SPI_MISO;
static const uint8_t SCK = PIN_SPI_SCK;
static const uint8_t A0 = PIN_A0;
static const uint8_t D0 = 16;
static const uint8_t D1 = 5;
static const uint8_t D2 = 4;
static const uint8_t D3 = 0;
static const uint8_t D4 = 2;
static const uint8_t D5 = 14;
static const uint8_t D6 = 12;
static const uint8_t D7 = 13;
static const uint8_t D8 = 15;
static const uint8_t D9 = 3;
static const uint8_t D10 = 1;

#define ICACHE_RAM_ATTR
#define IRAM_ATTR
#define ICACHE_FLASH_ATTR

class __FlashStringHelper;
#define FPSTR(p) (reinterpret_cast<const __FlashStringHelper*>(p))
#define F(s) FPSTR(PSTR(s))

using std::abs;
using std::isinf;
using std::isnan;
using std::max;
using std::min;
using std::round;

#define PI 3.1415926535897932384626433832795
#define HALF_PI 1.5707963267948966192313216916398
#define TWO_PI 6.283185307179586476925286766559
#define DEG_TO_RAD 0.017453292519943295769236907684886
#define RAD_TO_DEG 57.295779513082320876798154814105
#define EULER 2.718281828459045235360287471352

#define radians(deg) ((deg) * DEG_TO_RAD)
#define degrees(rad) ((rad) * RAD_TO_DEG)
#define sq(x) ((x) * (x))
#define lowByte(w) ((uint8_t)((w) & 0xff))
#define highByte(w) ((uint8_t)((w) >> 8))
#define bitRead(value, bit) (((value) >> (bit)) & 0x01)
#define bitSet(value, bit) ((value) |= (1UL << (bit)))
#define bitClear(value, bit) ((value) &= ~(1UL << (bit)))
#define bitWrite(value, bit, bitvalue) ((bitvalue) ? bitSet(value, bit) : bitClear(value, bit))
#define bit(b) (1UL << (b))
#define clockCyclesPerMicrosecond() (80L)
#define microsecondsToClockCycles(a) ((a) * clockCyclesPerMicrosecond())
// One process, one thread: there is nothing to mask.
#define interrupts() ((void)0)
#define noInterrupts() ((void)0)

template <typename T, typename L, typename H>
constexpr T constrain(T v, L lo, H hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

typedef uint8_t byte;
typedef bool boolean;

inline uint16_t makeWord(uint16_t w) { return w; }
inline uint16_t makeWord(byte h, byte l) { return static_cast<uint16_t>((h << 8) | l); }
#define word(...) makeWord(__VA_ARGS__)

// WMath: random() draws from ESP.random() unless randomSeed() chose a sequence.
long random(long howbig);
long random(long howsmall, long howbig);
void randomSeed(unsigned long seed);
long secureRandom(long howbig);
long secureRandom(long howsmall, long howbig);
long map(long x, long in_min, long in_max, long out_min, long out_max);

// The core's libc (newlib) has these; glibc only from 2.38.
#if defined(__GLIBC__) && (__GLIBC__ < 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ < 38))
inline size_t strlcpy(char* dst, const char* src, size_t size) {
  const size_t len = strlen(src);
  if (size) {
    const size_t n = len < size - 1 ? len : size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
  }
  return len;
}
inline size_t strlcat(char* dst, const char* src, size_t size) {
  const size_t used = strnlen(dst, size);
  if (used == size) return size + strlen(src);
  return used + strlcpy(dst + used, src, size - used);
}
#endif

// stdlib_noniso of the core.
char* itoa(int value, char* result, int base);
char* ltoa(long value, char* result, int base);
char* utoa(unsigned value, char* result, int base);
char* ultoa(unsigned long value, char* result, int base);
char* dtostrf(double number, signed char width, unsigned char prec, char* s);

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void optimistic_yield(uint32_t interval_us);
void delayMicroseconds(unsigned int us);
// Lets the "system" run: on the host, moves pending console input into Serial.
void yield();

// GPIO and A0 live in a small file shared with the harness (harness/sim/pins.py):
// outputs are what the test reads, inputs and A0 are what the test drives.
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);
inline void analogReference(uint8_t) {}
void analogWrite(uint8_t pin, int val);
void analogWriteMode(uint8_t pin, int val, bool openDrain);
void analogWriteFreq(uint32_t freq);
void analogWriteResolution(int res);
void analogWriteRange(uint32_t range);
// Handlers run from the loop context (between loop() passes, in delay() and yield()),
// when the shim sees the input level change; a pulse shorter than one pass can be missed.
void attachInterrupt(uint8_t pin, void (*handler)(void), int mode);
void attachInterruptArg(uint8_t pin, void (*handler)(void*), void* arg, int mode);
void detachInterrupt(uint8_t pin);

void setup();
void loop();

// The wall clock (sim_time.cpp): from 1970 at boot until SNTP (configTime) or
// settimeofday() sets it; SNTP takes the PC's clock once the station is connected.
void setTZ(const char* tz);
void configTime(const char* tz, const char* server1, const char* server2 = nullptr,
                const char* server3 = nullptr);
void configTime(int timezone, int daylightOffset_sec, const char* server1,
                const char* server2 = nullptr, const char* server3 = nullptr);
inline void configTzTime(const char* tz, const char* server1, const char* server2 = nullptr,
                         const char* server3 = nullptr) {
  configTime(tz, server1, server2, server3);
}
void configTime(int timezone, int daylightOffset_sec, String server1,
                String server2 = String(), String server3 = String());
void configTime(const char* tz, String server1, String server2 = String(),
                String server3 = String());
bool getLocalTime(struct tm* info, uint32_t ms = 5000);
