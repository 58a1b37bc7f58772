// Helpers shared by the libFuzzer targets of firmware/fuzz/ (host-only code, never on the
// device): a check macro that reports and aborts, a cursor over the fuzz input, and a
// bit-by-bit CRC-32 that is independent of the library's nibble-table one.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// A broken invariant is a finding: say which one, then abort so libFuzzer saves the input.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
      abort();                                                                          \
    }                                                                                   \
  } while (0)

namespace fuzz {

/// Reads the fuzz input front to back; past the end it yields zeros (so every input,
/// however short, is a valid program for the target).
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  size_t left() const { return empty() ? 0 : size_ - pos_; }
  uint8_t u8() { return empty() ? 0 : data_[pos_++]; }
  uint16_t u16() { return static_cast<uint16_t>((u8() << 8) | u8()); }
  uint32_t u32() { return (static_cast<uint32_t>(u16()) << 16) | u16(); }
  /// Up to `n` bytes in place; `*got` is how many there were.
  const uint8_t* bytes(size_t n, size_t* got) {
    const size_t take = n < left() ? n : left();
    const uint8_t* p = data_ + (empty() ? size_ : pos_);
    pos_ += take;
    *got = take;
    return p;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// CRC-32 (IEEE 802.3, reflected, as zlib.crc32), one bit at a time: a reference for the
/// library's table-driven version.
inline uint32_t referenceCrc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFU;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320U & (0U - (c & 1U)));
  }
  return ~c;
}

inline uint32_t be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

}  // namespace fuzz
