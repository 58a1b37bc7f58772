// The armed Tickers sit in a fixed table the idle loop consults for its wait and
// services after it (see sim_main.cpp).
#include "Ticker.h"

#include "sim_internal.h"

namespace esp_hil_sim {
namespace {

constexpr int kMaxTickers = 32;
Ticker* g_tickers[kMaxTickers];

}  // namespace

int64_t timers_wait_us() {
  int64_t best = -1;
  const uint64_t now = monotonic_us();
  for (Ticker* t : g_tickers) {
    if (!t) continue;
    const int64_t wait = t->due_us() > now ? static_cast<int64_t>(t->due_us() - now) : 0;
    if (best < 0 || wait < best) best = wait;
  }
  return best;
}

void timers_service() {
  const uint64_t now = monotonic_us();
  for (Ticker*& t : g_tickers) {
    if (t && t->due_us() <= now) t->fire();
  }
}

int timer_add(Ticker* t) {
  for (int i = 0; i < kMaxTickers; i++) {
    if (!g_tickers[i]) {
      g_tickers[i] = t;
      return i;
    }
  }
  log("more than %d Tickers armed at once: this one does not run", kMaxTickers);
  return -1;
}

void timer_remove(int slot) { g_tickers[slot] = nullptr; }

}  // namespace esp_hil_sim

Ticker::~Ticker() { detach(); }

void Ticker::arm(uint32_t milliseconds, bool repeat, callback_function_t callback) {
  detach();
  if (firing_) {
    next_callback_ = std::move(callback);
  } else {
    callback_ = std::move(callback);
  }
  // The core's timers have a 1 ms floor; a 0 ms repeat would starve loop().
  period_us_ = static_cast<uint64_t>(milliseconds < 1 ? 1 : milliseconds) * 1000u;
  due_us_ = esp_hil_sim::monotonic_us() + period_us_;
  repeat_ = repeat;
  slot_ = esp_hil_sim::timer_add(this);
}

void Ticker::detach() {
  if (slot_ < 0) return;
  esp_hil_sim::timer_remove(slot_);
  slot_ = -1;
}

void Ticker::fire() {
  if (repeat_) {
    due_us_ += period_us_;
    // Late by more than a period (a long loop()): skip the missed ticks, like the SDK timer.
    const uint64_t now = esp_hil_sim::monotonic_us();
    if (due_us_ <= now) due_us_ = now + period_us_;
  } else {
    detach();
  }
  // The callback may detach or re-arm this Ticker (arm() keeps callback_ alive meanwhile).
  firing_ = true;
  if (callback_) callback_();
  firing_ = false;
  if (next_callback_) {
    callback_ = std::move(next_callback_);
    next_callback_ = nullptr;
  }
}
