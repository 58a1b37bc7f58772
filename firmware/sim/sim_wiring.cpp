// WMath and stdlib_noniso of the core: random numbers, map(), number to text.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "Arduino.h"

namespace {

bool g_seeded = false;  // randomSeed() chose a reproducible sequence

// Writes value in base 2..36 to result (lower-case digits), with a '-' if negative.
char* format(unsigned long value, bool negative, char* result, int base) {
  if (base < 2 || base > 36) {
    result[0] = '\0';
    return result;
  }
  char digits[72];
  size_t n = 0;
  do {
    const unsigned d = static_cast<unsigned>(value % static_cast<unsigned>(base));
    digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    value /= static_cast<unsigned>(base);
  } while (value);
  char* p = result;
  if (negative) *p++ = '-';
  while (n) *p++ = digits[--n];
  *p = '\0';
  return result;
}

char* format_signed(long value, char* result, int base) {
  // As the core: only base 10 shows a sign.
  if (base == 10 && value < 0) return format(0UL - static_cast<unsigned long>(value), true, result, base);
  return format(static_cast<unsigned long>(value), false, result, base);
}

}  // namespace

void randomSeed(unsigned long seed) {
  if (seed == 0) return;
  srand(static_cast<unsigned>(seed));
  g_seeded = true;
}

long random(long howbig) {
  if (howbig == 0) return 0;
  const uint32_t v = g_seeded ? static_cast<uint32_t>(rand()) : ESP.random();
  return static_cast<long>(v % static_cast<unsigned long>(howbig));
}

long random(long howsmall, long howbig) {
  if (howsmall >= howbig) return howsmall;
  return random(howbig - howsmall) + howsmall;
}

long secureRandom(long howbig) {
  if (howbig == 0) return 0;
  return static_cast<long>(ESP.random() % static_cast<unsigned long>(howbig));
}

long secureRandom(long howsmall, long howbig) {
  if (howsmall >= howbig) return howsmall;
  return secureRandom(howbig - howsmall) + howsmall;
}

long map(long x, long in_min, long in_max, long out_min, long out_max) {
  const long divisor = in_max - in_min;
  if (divisor == 0) return out_min;  // the chip would take a divide-by-zero exception
  // Rounded to the nearest, as the core 3.x does.
  return ((x - in_min) * (out_max - out_min) + divisor / 2) / divisor + out_min;
}

char* itoa(int value, char* result, int base) {
  if (base == 10) return format_signed(value, result, base);
  return format(static_cast<unsigned>(value), false, result, base);  // 32-bit two's complement
}
char* ltoa(long value, char* result, int base) { return format_signed(value, result, base); }
char* utoa(unsigned value, char* result, int base) { return format(value, false, result, base); }
char* ultoa(unsigned long value, char* result, int base) { return format(value, false, result, base); }

char* dtostrf(double number, signed char width, unsigned char prec, char* s) {
  // Negative width pads on the right, as avr-libc's does.
  sprintf(s, "%*.*f", static_cast<int>(width), static_cast<int>(prec), number);
  return s;
}
