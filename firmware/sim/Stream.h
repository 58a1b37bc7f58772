// Stream: a Print that can also be read from, with the core's parsing helpers.
// Reads that wait (readBytes, readString*, parseInt, find) wait at most the stream
// timeout for each byte, letting the "system" run meanwhile (as delay() does).
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
  // Like readBytes, but stops at (and consumes) the terminator, which is not stored.
  size_t readBytesUntil(char terminator, char* buffer, size_t length);
  size_t readBytesUntil(char terminator, uint8_t* buffer, size_t length) {
    return readBytesUntil(terminator, reinterpret_cast<char*>(buffer), length);
  }
  // Everything until the timeout passes with no byte.
  String readString();
  // Up to the terminator (consumed, not returned), or what came before the timeout.
  String readStringUntil(char terminator);

  // Skips input until target has been read; false on timeout.
  bool find(const char* target) { return findUntil(target, nullptr); }
  bool find(char target) {
    const char t[2] = {target, '\0'};
    return find(t);
  }
  // As find, but also gives up once terminator has been read.
  bool findUntil(const char* target, const char* terminator);

  // The next integer in the input: skips what cannot start one, stops at the first
  // character that cannot continue it (left unread). 0 on timeout.
  long parseInt();
  float parseFloat();

 protected:
  int timedRead() { return timed(&Stream::read); }  // the next byte, or -1 after the timeout
  int timedPeek() { return timed(&Stream::peek); }
  unsigned long timeout_ms_ = 1000;

 private:
  int timed(int (Stream::*op)());
  // Peeks past what cannot start a number; -1 on timeout.
  int peekNumberStart(bool decimal);
};
