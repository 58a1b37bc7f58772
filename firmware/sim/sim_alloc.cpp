// Global operator new/delete, replaced so the simulated heap can count what the
// sketch allocates. Only operator new / new[] is counted (also String, which uses
// new[]); plain malloc (libc internals, getaddrinfo, printf temporaries) is not.
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <new>

#include "esp_hil_sim.h"
#include "sim_internal.h"

namespace {

// 52 KiB: roughly what an ESP8266 has free with WiFi up before the sketch allocates;
// ESP_HIL_HEAP (1024..81920 bytes) shrinks (or grows) it for a test. Read with getenv on
// first use: a sketch's global constructors may allocate before main().
constexpr uint32_t kHeapDefault = 52u * 1024u;

uint32_t heap_total() {
  static const uint32_t total = [] {
    const char* text = getenv("ESP_HIL_HEAP");
    if (!text || !*text) return kHeapDefault;
    char* end = nullptr;
    const unsigned long v = strtoul(text, &end, 10);
    if (*end != '\0' || v < 1024 || v > 80u * 1024u) {
      esp_hil_sim::log("bad ESP_HIL_HEAP=%s", text);
      _exit(esp_hil_sim::kExitConfig);
    }
    return static_cast<uint32_t>(v);
  }();
  return total;
}

// Only the sketch's thread allocates (the watchdog thread never does).
uint32_t g_alloc_count = 0;
uint32_t g_live_count = 0;
uint64_t g_live_bytes = 0;

void* counted_alloc(size_t size, size_t align) {
  if (size == 0) size = 1;
  // The real heap fails when it is exhausted; so does the simulated one.
  if (g_live_bytes + size > heap_total()) {
    esp_hil_sim::log("operator new(%zu) fails: simulated heap exhausted (%llu of %u bytes live)", size,
                     static_cast<unsigned long long>(g_live_bytes), heap_total());
    return nullptr;
  }
  void* p = align > alignof(max_align_t) ? aligned_alloc(align, (size + align - 1) / align * align)
                                         : malloc(size);
  if (!p) return nullptr;
  g_alloc_count++;
  g_live_count++;
  g_live_bytes += malloc_usable_size(p);
  return p;
}

void counted_free(void* p) {
  if (!p) return;
  size_t usable = malloc_usable_size(p);
  g_live_count--;
  g_live_bytes = g_live_bytes >= usable ? g_live_bytes - usable : 0;
  free(p);
}

}  // namespace

extern "C" uint32_t esp_hil_sim_alloc_count(void) { return g_alloc_count; }
extern "C" uint32_t esp_hil_sim_alloc_live_count(void) { return g_live_count; }
extern "C" uint32_t esp_hil_sim_alloc_live_bytes(void) { return static_cast<uint32_t>(g_live_bytes); }
extern "C" uint32_t esp_hil_sim_heap_total(void) { return heap_total(); }

// Built without exceptions: like the ESP8266 core, a failed new returns nullptr.
void* operator new(size_t size) { return counted_alloc(size, 0); }
void* operator new[](size_t size) { return counted_alloc(size, 0); }
void* operator new(size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size, 0); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size, 0); }
void* operator new(size_t size, std::align_val_t al) { return counted_alloc(size, static_cast<size_t>(al)); }
void* operator new[](size_t size, std::align_val_t al) {
  return counted_alloc(size, static_cast<size_t>(al));
}
void* operator new(size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<size_t>(al));
}
void* operator new[](size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<size_t>(al));
}

void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, size_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
