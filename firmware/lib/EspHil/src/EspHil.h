// EspHil: the esp-hil agent for any sketch. It owns the serial console the harness talks
// to (docs/console.md): the BOOT line, WiFi provisioning over the console (credentials kept
// where the SDK keeps its station config, never in EEPROM), joining, and the READY line
// that tells the harness where the sketch's own WiFiSocket service is, and the link's
// pre-shared key (`key <hex>` on the console, kept in a flash sector of its own, never
// printed back; onKey() hands it to the sketch).
//
//   #include <EspHil.h>
//   #include <WiFiSocket.h>
//   WiFiSocket soc;
//   void setup() {
//     EspHil.begin("my-sketch/1.0");           // Serial 115200, BOOT, join stored WiFi
//     soc.begin(8080);
//     EspHil.ready(8080, soc.maxMessage());    // READY each time the WiFi is up
//   }
//   void loop() { EspHil.loop(); soc.loop(); ... }
//
// Fixed buffers only (about 460 bytes of static RAM); nothing is allocated after begin().
#pragma once

#include <Arduino.h>
#include <stddef.h>
#include <stdint.h>

// This EspHil has onKey() (a sketch that must also build against an older one tests this).
#define ESPHIL_HAS_KEY_HOOK 1

#include "esphil/console.h"

class EspHilClass {
 public:
  /// A sketch's own console command: `name` is the first word, `args` the rest (may be
  /// empty). Return false for a name the sketch does not know (the agent then answers
  /// `ESP-HIL ERR <name> unknown command`). Answer with ok()/error() or your own line.
  using CommandHook = bool (*)(const char* name, char* args);
  /// Console `dial <host> <port>` (host and port checked) or `dial off` (host nullptr):
  /// nullptr when done, else why not (printed as `ESP-HIL ERR dial <why>`).
  using DialHook = const char* (*)(const char* host, uint16_t port);
  /// Appends `, "key": value` pairs to the `info` JSON.
  using InfoHook = void (*)(esphil::Text& json);
  /// The link's pre-shared key: `len` (16..32) bytes at `key`, or len 0 when it was cleared.
  /// `key` is valid during the call only: copy it (e.g. WiFiSocket::setKey) and keep it out
  /// of any output.
  using KeyHook = void (*)(const uint8_t* key, size_t len);

  /// Console on Serial at 115200, the BOOT line with `name` (plus the twin's build id),
  /// then joins the stored WiFi (`ESP-HIL WIFI connecting ...`) or says `ESP-HIL WIFI none`.
  void begin(const char* name = nullptr);
  /// Declares the sketch's listening service: `ESP-HIL READY ... port=<port> ...` now if
  /// the WiFi is up, and again each time it comes back. `extra` (kept by pointer: a string
  /// literal or static) is appended as more `key=value` fields.
  void ready(uint16_t port, uint32_t maxMessage, const char* extra = nullptr);
  /// The same for a sketch that dials the PC at host:port instead: READY says
  /// `port=0 dial=<host>:<port>`. `host` is kept by pointer.
  void readyDialing(const char* host, uint16_t port, uint32_t maxMessage,
                    const char* extra = nullptr);
  /// Call from loop(): console commands and the WiFi state. Never blocks.
  void loop();

  void onCommand(CommandHook hook) { commandHook_ = hook; }
  void onDial(DialHook hook) { dialHook_ = hook; }
  void onInfo(InfoHook hook) { infoHook_ = hook; }
  /// Calls `hook` at once if a key is stored, and again after each accepted `key` command
  /// (`key off`: len 0), before that command's `ESP-HIL OK key`.
  void onKey(KeyHook hook);

  /// `ESP-HIL OK <command>` / `ESP-HIL ERR <command> <why>`, for a sketch's own commands.
  void ok(const char* command);
  void error(const char* command, const char* why);

  /// The WiFi is joined (READY has been or is being printed).
  bool wifiUp() const { return state_ == State::kUp; }
  /// The info JSON of docs/console.md (`info` on the console); returns its length.
  size_t info(char* buf, size_t cap);
  const char* identity() const { return identity_; }
  const char* mac() const { return mac_; }
  const char* resetReason() const { return resetReason_; }

 private:
  // kLost: joined before, the link dropped; the SDK's auto-reconnect is rejoining.
  enum class State : uint8_t { kNone, kJoining, kUp, kFailed, kLost };

  void handleLine(char* line);
  void cmdWifi(char* args);
  void cmdDial(char* args);
  void cmdKey(char* args);
  void startJoin(const char* pass);  // nullptr: the stored credentials
  void wifiLoop();
  void printReady();
  void printPercent(const char* s);

  esphil::LineReader reader_;
  char identity_[64] = {};  // a name of up to 50 characters, "+", a 12-digit build id
  char resetReason_[40] = {};
  char mac_[18] = {};
  char ssid_[esphil::kSsidMax + 1] = {};
  const char* readyExtra_ = nullptr;
  const char* dialHost_ = nullptr;
  CommandHook commandHook_ = nullptr;
  DialHook dialHook_ = nullptr;
  InfoHook infoHook_ = nullptr;
  KeyHook keyHook_ = nullptr;
  uint32_t maxMessage_ = 0;
  uint32_t joinStartedAt_ = 0;
  uint16_t port_ = 0;
  bool declared_ = false;
  bool keySet_ = false;
  State state_ = State::kNone;
};

extern EspHilClass EspHil;
