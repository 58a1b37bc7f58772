#pragma once

// LittleFS of the twin: its files are a directory beside the flash file (FS.h).
#include "FS.h"

class LittleFSConfig : public fs::FSConfig {
 public:
  static constexpr uint32_t FSId = 0x4c495454;  // "LITT"
  explicit LittleFSConfig(bool autoFormat = true) : fs::FSConfig(FSId, autoFormat) {}
};

extern fs::FS LittleFS;
