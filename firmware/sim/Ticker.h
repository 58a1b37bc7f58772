// Ticker: periodic and one-shot callbacks, with the core's signatures
// (libraries/Ticker). On the twin every callback runs from the loop context: when the
// sketch yields (between loop() passes, in delay(), yield()), as the core's
// *_scheduled variants do. The idle wait ends when the next Ticker is due.
#pragma once

#include <stdint.h>

#include <functional>

class Ticker {
 public:
  using callback_function_t = std::function<void()>;
  using callback_with_arg_t = void (*)(void*);

  Ticker() = default;
  ~Ticker();
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  void attach(float seconds, callback_function_t callback) { arm(seconds_to_ms(seconds), true, std::move(callback)); }
  void attach_ms(uint32_t milliseconds, callback_function_t callback) { arm(milliseconds, true, std::move(callback)); }
  void attach_scheduled(float seconds, callback_function_t callback) { attach(seconds, std::move(callback)); }
  void attach_ms_scheduled(uint32_t milliseconds, callback_function_t callback) {
    attach_ms(milliseconds, std::move(callback));
  }
  void attach_ms_scheduled_accurate(uint32_t milliseconds, callback_function_t callback) {
    attach_ms(milliseconds, std::move(callback));
  }
  void once(float seconds, callback_function_t callback) { arm(seconds_to_ms(seconds), false, std::move(callback)); }
  void once_ms(uint32_t milliseconds, callback_function_t callback) { arm(milliseconds, false, std::move(callback)); }
  void once_scheduled(float seconds, callback_function_t callback) { once(seconds, std::move(callback)); }
  void once_ms_scheduled(uint32_t milliseconds, callback_function_t callback) {
    once_ms(milliseconds, std::move(callback));
  }

  // A function taking one argument no larger than a pointer, as on the core.
  template <typename Func, typename Arg>
  void attach(float seconds, Func func, Arg arg) {
    attach(seconds, bind(func, arg));
  }
  template <typename Func, typename Arg>
  void attach_ms(uint32_t milliseconds, Func func, Arg arg) {
    attach_ms(milliseconds, bind(func, arg));
  }
  template <typename Func, typename Arg>
  void once(float seconds, Func func, Arg arg) {
    once(seconds, bind(func, arg));
  }
  template <typename Func, typename Arg>
  void once_ms(uint32_t milliseconds, Func func, Arg arg) {
    once_ms(milliseconds, bind(func, arg));
  }

  void detach();
  bool active() const { return slot_ >= 0; }
  explicit operator bool() const { return active(); }

  // Shim internals (the timer table in Ticker.cpp calls these).
  uint64_t due_us() const { return due_us_; }
  void fire();

 private:
  template <typename Func, typename Arg>
  static callback_function_t bind(Func func, Arg arg) {
    static_assert(sizeof(Arg) <= sizeof(void*), "Ticker argument larger than a pointer");
    return [func, arg]() { func(arg); };  // small enough for std::function's inline storage
  }
  static uint32_t seconds_to_ms(float seconds) { return seconds <= 0 ? 0 : static_cast<uint32_t>(seconds * 1000.0f); }
  void arm(uint32_t milliseconds, bool repeat, callback_function_t callback);

  callback_function_t callback_;
  // A callback that re-arms its own Ticker must not destroy itself while it runs: the
  // new one waits here until the call returns.
  callback_function_t next_callback_;
  bool firing_ = false;
  uint64_t period_us_ = 0;
  uint64_t due_us_ = 0;
  bool repeat_ = false;
  int slot_ = -1;  // index in the shim's timer table while armed
};
