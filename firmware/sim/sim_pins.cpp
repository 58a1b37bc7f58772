// GPIO 0..16 and A0 of the twin. Their state lives in a 256-byte file shared
// (mmap, MAP_SHARED) with the harness, "<ESP_HIL_FLASH>.pins": the sketch's side
// (modes, output levels, PWM) is written here and read by the test; the test's side
// (input levels, the A0 value) is written by harness/sim/pins.py and read here.
// The layout is the contract between the two; keep it in step with pins.py.
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "Arduino.h"
#include "sim_internal.h"

namespace esp_hil_sim {

uint32_t g_falls[NUM_DIGITAL_PINS] = {};

namespace {

constexpr uint8_t kPins = NUM_DIGITAL_PINS;  // GPIO 0..16
constexpr uint8_t kInFloating = 0;  // the test does not drive the pin
constexpr uint8_t kInLow = 1;
constexpr uint8_t kInHigh = 2;

// Offsets are fixed (see pins.py); every field is written by one side only.
struct PinFile {
  uint8_t mode[kPins];  // firmware: the core's mode constant (0 = INPUT, the reset state)
  uint8_t pad0[32 - kPins];
  uint8_t out[kPins];  // firmware: level from digitalWrite (0/1)
  uint8_t pad1[32 - kPins];
  uint8_t in[kPins];  // test: kInFloating / kInLow / kInHigh
  uint8_t pad2[32 - kPins];
  uint16_t duty[kPins];  // firmware: analogWrite value
  uint8_t pad3[40 - 2 * kPins];
  uint16_t range[kPins];  // firmware: PWM range while PWM runs, 0 = no PWM
  uint8_t pad4[40 - 2 * kPins];
  uint16_t analog;  // test: what analogRead(A0) returns, 0..1023
  uint8_t pad5[256 - 178];
};
static_assert(sizeof(PinFile) == 256, "pins file layout");
static_assert(offsetof(PinFile, out) == 32 && offsetof(PinFile, in) == 64, "pins file layout");
static_assert(offsetof(PinFile, duty) == 96 && offsetof(PinFile, range) == 136, "pins file layout");
static_assert(offsetof(PinFile, analog) == 176, "pins file layout");

PinFile g_local;  // without a flash file: the pins exist, nobody outside sees them
volatile PinFile* g_pins = nullptr;

uint32_t g_pwm_range = 255;  // the core 3.x default

struct Isr {
  void (*plain)(void);
  void (*with_arg)(void*);
  void* arg;
  int mode;
  int last;  // level at the last check, -1 = not sampled yet
};
Isr g_isr[EXTERNAL_NUM_INTERRUPTS];
bool g_any_isr = false;

volatile PinFile& pins() {
  if (g_pins) return *g_pins;
  g_pins = &g_local;
  void* map = world_file(".pins", sizeof(PinFile), true, "pins are not visible to the harness");
  if (!map) return *g_pins;
  g_pins = static_cast<volatile PinFile*>(map);
  // Power on: every GPIO is an input, nothing driven, no PWM. The test's side stays.
  for (uint8_t p = 0; p < kPins; p++) {
    g_pins->mode[p] = INPUT;
    g_pins->out[p] = 0;
    g_pins->duty[p] = 0;
    g_pins->range[p] = 0;
  }
  return *g_pins;
}

bool usable(uint8_t pin, const char* what) {
  if (pin >= kPins) return false;
  if (isFlashInterfacePin(pin)) {
    // On the chip these pins carry the flash bus: touching them crashes the board.
    static uint32_t warned = 0;  // one line per pin, not one per call in a loop
    if (!(warned & (1u << pin))) log("%s(%u): GPIO %u is a flash pin (6..11); ignored", what, pin, pin);
    warned |= 1u << pin;
    return false;
  }
  return true;
}

int level_of(uint8_t pin) {
  volatile PinFile& f = pins();
  const uint8_t mode = f.mode[pin];
  if (mode == OUTPUT || mode == OUTPUT_OPEN_DRAIN) {
    if (f.range[pin]) return f.duty[pin] * 2 >= f.range[pin] ? HIGH : LOW;
    return f.out[pin] ? HIGH : LOW;
  }
  const uint8_t in = f.in[pin];
  if (in == kInHigh) return HIGH;
  if (in == kInLow) return LOW;
  return mode == INPUT_PULLUP ? HIGH : LOW;
}

void stop_pwm(uint8_t pin) {
  pins().range[pin] = 0;
  pins().duty[pin] = 0;
}

}  // namespace

int pin_output(uint8_t pin) {
  if (pin >= kPins) return -1;
  volatile PinFile& f = pins();
  if (f.mode[pin] != OUTPUT && f.mode[pin] != OUTPUT_OPEN_DRAIN) return -1;
  return level_of(pin);
}

void pins_init() { static_cast<void>(&pins()); }

void pins_service() {
  if (!g_any_isr) return;
  for (uint8_t pin = 0; pin < EXTERNAL_NUM_INTERRUPTS; pin++) {
    Isr& isr = g_isr[pin];
    if (!isr.plain && !isr.with_arg) continue;
    const int now = level_of(pin);
    const int was = isr.last;
    isr.last = now;
    bool fire;
    switch (isr.mode) {
      case RISING: fire = was == LOW && now == HIGH; break;
      case FALLING: fire = was == HIGH && now == LOW; break;
      case CHANGE: fire = was >= 0 && was != now; break;
      case ONLOW: case ONLOW_WE: fire = now == LOW; break;
      case ONHIGH: case ONHIGH_WE: fire = now == HIGH; break;
      default: fire = false;
    }
    if (!fire) continue;
    if (isr.plain) isr.plain();
    else isr.with_arg(isr.arg);
  }
}

}  // namespace esp_hil_sim

using esp_hil_sim::pins;

void pinMode(uint8_t pin, uint8_t mode) {
  if (!esp_hil_sim::usable(pin, "pinMode")) return;
  esp_hil_sim::stop_pwm(pin);
  pins().mode[pin] = mode;
}

void digitalWrite(uint8_t pin, uint8_t val) {
  if (!esp_hil_sim::usable(pin, "digitalWrite")) return;
  esp_hil_sim::stop_pwm(pin);
  volatile auto& f = pins();
  if (f.out[pin] && !val) esp_hil_sim::g_falls[pin]++;
  f.out[pin] = val ? 1 : 0;
}

int digitalRead(uint8_t pin) {
  if (pin >= NUM_DIGITAL_PINS || isFlashInterfacePin(pin)) return LOW;
  return esp_hil_sim::level_of(pin);
}

int analogRead(uint8_t pin) {
  // As on the core: both A0 (17) and ADC channel 0 read the ADC.
  if (pin == A0 || pin == 0) {
    const uint16_t v = pins().analog;
    return v > 1023 ? 1023 : v;
  }
  return digitalRead(pin) * 1023;
}

void analogWriteMode(uint8_t pin, int val, bool openDrain) {
  if (pin > 16 || !esp_hil_sim::usable(pin, "analogWrite")) return;
  const int range = static_cast<int>(esp_hil_sim::g_pwm_range);
  if (val < 0) val = 0;
  if (val > range) val = range;
  volatile auto& f = pins();
  f.mode[pin] = openDrain ? OUTPUT_OPEN_DRAIN : OUTPUT;
  // The core drives 0 and full scale as plain levels (no waveform).
  if (val == 0 || val == range) {
    esp_hil_sim::stop_pwm(pin);
    f.out[pin] = val ? 1 : 0;
    return;
  }
  f.duty[pin] = static_cast<uint16_t>(val);
  f.range[pin] = static_cast<uint16_t>(range);
}

void analogWrite(uint8_t pin, int val) { analogWriteMode(pin, val, false); }

void analogWriteFreq(uint32_t) {}  // the duty is what the harness sees; the period is not

void analogWriteRange(uint32_t range) {
  if (range >= 15 && range <= 65535) esp_hil_sim::g_pwm_range = range;
}

void analogWriteResolution(int res) {
  if (res >= 4 && res <= 16) esp_hil_sim::g_pwm_range = (1u << res) - 1;
}

void attachInterruptArg(uint8_t pin, void (*handler)(void*), void* arg, int mode) {
  if (pin >= EXTERNAL_NUM_INTERRUPTS || !handler) return;
  esp_hil_sim::g_isr[pin] = {nullptr, handler, arg, mode, esp_hil_sim::level_of(pin)};
  esp_hil_sim::g_any_isr = true;
}

void attachInterrupt(uint8_t pin, void (*handler)(void), int mode) {
  if (pin >= EXTERNAL_NUM_INTERRUPTS || !handler) return;
  esp_hil_sim::g_isr[pin] = {handler, nullptr, nullptr, mode, esp_hil_sim::level_of(pin)};
  esp_hil_sim::g_any_isr = true;
}

void detachInterrupt(uint8_t pin) {
  if (pin < EXTERNAL_NUM_INTERRUPTS) esp_hil_sim::g_isr[pin] = {};
}
