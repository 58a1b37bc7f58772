// Stream: a Print that can also be read from.
#pragma once

#include "Print.h"

class Stream : public Print {
 public:
  virtual int available() = 0;
  virtual int read() = 0;
  virtual int peek() = 0;

  void setTimeout(unsigned long ms) { timeout_ms_ = ms; }
  unsigned long getTimeout() const { return timeout_ms_; }
  // Reads up to length bytes, waiting at most the stream timeout for each one.
  size_t readBytes(uint8_t* buffer, size_t length);
  size_t readBytes(char* buffer, size_t length) {
    return readBytes(reinterpret_cast<uint8_t*>(buffer), length);
  }

 protected:
  unsigned long timeout_ms_ = 1000;
};
