// The simulated heap: a fixed arena with the board's ceiling, carved in umm_malloc's 8-byte
// blocks by best fit, so it runs out and fragments as the chip's heap does. Two ways in:
// - global operator new/delete (replaced here): a plain new the arena cannot hold resets
//   the chip with the core's "Unhandled C++ exception: OOM" report (abi.cpp), a nothrow new
//   returns nullptr;
// - malloc/calloc/realloc/free called from code compiled into the firmware (the sketch, its
//   libraries, the shim): the build links with -Wl,--wrap=malloc,... so only those calls
//   reach __wrap_malloc & co.; libc's and libstdc++'s own calls (stdio buffers, getaddrinfo)
//   and the sanitizers' stay with the host's allocator. They return NULL past the heap.
//
// The arena is bookkeeping only: each allocation is placed in it (which blocks it takes is
// what getFreeHeap, getMaxFreeBlockSize and getHeapFragmentation report), while its bytes
// come from the host's malloc, so alignment and sanitizers work as for any host program.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <new>

#include "esp_hil_sim.h"
#include "sim_internal.h"

// The host's allocator, behind the link's --wrap (harness/sim/build.py SHIM_LINK_FLAGS).
extern "C" void* __real_malloc(size_t size);
extern "C" void* __real_calloc(size_t n, size_t size);
extern "C" void* __real_realloc(void* p, size_t size);
extern "C" void __real_free(void* p);

namespace {

// 52 KiB: roughly what an ESP8266 has free with WiFi up before the sketch allocates;
// ESP_HIL_HEAP (1024..81920 bytes) shrinks (or grows) it for a test. Read with getenv on
// first use: a sketch's global constructors may allocate before main().
constexpr uint32_t kHeapDefault = 52u * 1024u;
constexpr uint32_t kHeapMax = 80u * 1024u;
constexpr uint32_t kBlock = 8;  // sizeof(umm_block)
constexpr uint32_t kMaxBlocks = kHeapMax / kBlock;

uint32_t heap_total() {
  static const uint32_t total = [] {
    const char* text = getenv("ESP_HIL_HEAP");
    if (!text || !*text) return kHeapDefault;
    char* end = nullptr;
    const unsigned long v = strtoul(text, &end, 10);
    if (*end != '\0' || v < 1024 || v > kHeapMax) {
      esp_hil_sim::log("bad ESP_HIL_HEAP=%s", text);
      _exit(esp_hil_sim::kExitConfig);
    }
    return static_cast<uint32_t>(v);
  }();
  return total;
}

// umm_malloc.cpp umm_blocks(): the first block holds 4 bytes of data after its header,
// every further block 8.
uint32_t blocks_for(size_t size) {
  if (size <= 4) return 1;
  const size_t more = (size - 4 + kBlock - 1) / kBlock;
  return more + 1 > kMaxBlocks ? kMaxBlocks + 1 : static_cast<uint32_t>(more + 1);
}

// The arena's free runs, in address order, never adjacent (a free coalesces, as umm_free
// assimilates its free neighbours). At most every other block is free.
struct Run {
  uint16_t start, len;
};
Run g_free[kMaxBlocks / 2 + 1];
size_t g_nfree = 0;
bool g_arena_ready = false;

void arena_init() {
  if (g_arena_ready) return;
  g_arena_ready = true;
  g_free[0] = {0, static_cast<uint16_t>(heap_total() / kBlock)};
  g_nfree = 1;
}

// Best fit (umm_malloc_cfg.h: UMM_BEST_FIT is the core's default): the smallest free run
// that holds `n` blocks, the lowest address among equals; the allocation takes its front.
// -1 when no run is large enough.
int arena_take(uint32_t n) {
  arena_init();
  size_t best = g_nfree;
  for (size_t i = 0; i < g_nfree; i++) {
    if (g_free[i].len >= n && (best == g_nfree || g_free[i].len < g_free[best].len)) best = i;
  }
  if (best == g_nfree) return -1;
  const int start = g_free[best].start;
  if (g_free[best].len == n) {
    memmove(g_free + best, g_free + best + 1, (g_nfree - best - 1) * sizeof(Run));
    g_nfree--;
  } else {
    g_free[best].start = static_cast<uint16_t>(g_free[best].start + n);
    g_free[best].len = static_cast<uint16_t>(g_free[best].len - n);
  }
  return start;
}

void arena_give(uint32_t start, uint32_t n) {
  size_t i = 0;  // the first free run after `start`
  while (i < g_nfree && g_free[i].start < start) i++;
  const bool join_prev = i > 0 && g_free[i - 1].start + g_free[i - 1].len == start;
  const bool join_next = i < g_nfree && start + n == g_free[i].start;
  if (join_prev && join_next) {
    g_free[i - 1].len = static_cast<uint16_t>(g_free[i - 1].len + n + g_free[i].len);
    memmove(g_free + i, g_free + i + 1, (g_nfree - i - 1) * sizeof(Run));
    g_nfree--;
  } else if (join_prev) {
    g_free[i - 1].len = static_cast<uint16_t>(g_free[i - 1].len + n);
  } else if (join_next) {
    g_free[i].start = static_cast<uint16_t>(start);
    g_free[i].len = static_cast<uint16_t>(g_free[i].len + n);
  } else {
    memmove(g_free + i + 1, g_free + i, (g_nfree - i) * sizeof(Run));
    g_free[i] = {static_cast<uint16_t>(start), static_cast<uint16_t>(n)};
    g_nfree++;
  }
}

// In front of every block handed out (kept 16 bytes so the sketch's pointer stays aligned
// for any type): where its host memory starts and what it holds in the arena.
struct alignas(16) Header {
  uint32_t offset;  // from the host allocation's start to the sketch's pointer
  uint16_t start;  // first arena block
  uint16_t blocks;
  uint32_t magic;
};
constexpr uint32_t kMagic = 0x48454150;  // "HEAP"

// Only the sketch's thread allocates (the watchdog thread never does).
uint32_t g_alloc_count = 0;
uint32_t g_live_count = 0;
uint32_t g_used_blocks = 0;
uint32_t g_system_blocks = 0;  // held by the emulated lwIP (heap_take), not by operator new

// What a failed allocation does: the core's abi.cpp (built without exceptions) calls
// __unhandled_exception("OOM") for a plain new, which resets the chip; a nothrow new
// returns nullptr.
enum class OnFail { kReset, kNull };

void* failed(size_t size, OnFail on_fail) {
  if (on_fail == OnFail::kNull) return nullptr;
  esp_hil_sim::unhandled_exception("OOM", size);
}

void* counted_alloc(size_t size, size_t align, OnFail on_fail) {
  const size_t asked = size;
  if (size == 0) size = 1;
  const uint32_t n = blocks_for(size);
  const int start = n <= kMaxBlocks ? arena_take(n) : -1;
  if (start < 0) {
    // The real heap fails when no free block is large enough; so does the simulated one.
    esp_hil_sim::log("operator new(%zu) fails: no free block of %u bytes in the simulated heap (%u free)", size,
                     n * kBlock, (heap_total() / kBlock - g_used_blocks - g_system_blocks) * kBlock);
    return failed(asked, on_fail);
  }
  const size_t lead = align > sizeof(Header) ? align : sizeof(Header);
  void* base = align > alignof(max_align_t) ? aligned_alloc(align, (lead + size + align - 1) / align * align)
                                            : __real_malloc(lead + size);
  if (!base) {
    arena_give(static_cast<uint32_t>(start), n);
    return failed(asked, on_fail);
  }
  char* p = static_cast<char*>(base) + lead;
  Header* h = reinterpret_cast<Header*>(p) - 1;
  *h = {static_cast<uint32_t>(lead), static_cast<uint16_t>(start), static_cast<uint16_t>(n), kMagic};
  g_alloc_count++;
  g_live_count++;
  g_used_blocks += n;
  return p;
}

void counted_free(void* p) {
  if (!p) return;
  Header* h = static_cast<Header*>(p) - 1;
  if (h->magic != kMagic) {
    esp_hil_sim::log("operator delete(%p): not a block of the simulated heap", p);
    abort();  // the core's umm_malloc would corrupt its heap here; stop at the bug instead
  }
  h->magic = 0;
  arena_give(h->start, h->blocks);
  g_live_count--;
  g_used_blocks -= h->blocks;
  __real_free(static_cast<char*>(p) - h->offset);
}

// malloc'ed blocks carry no header in front (libc may free or realloc a block the sketch
// malloc'ed, e.g. getline's buffer, and must see the host's own pointer): a table maps each
// live one to its arena blocks. At most one entry per arena block; open addressing with
// linear probing, deletion by backward shift.
struct Placed {
  void* p;
  uint16_t start, blocks;
};
constexpr size_t kSlots = 16384;  // a power of two above kMaxBlocks
static_assert(kSlots > kMaxBlocks, "every arena block may be a malloc of its own");
Placed g_placed[kSlots];

size_t slot_of(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull >> 50 & (kSlots - 1);
}

Placed* placed_find(const void* p) {
  for (size_t i = slot_of(p);; i = (i + 1) & (kSlots - 1)) {
    if (g_placed[i].p == p) return &g_placed[i];
    if (g_placed[i].p == nullptr) return nullptr;
  }
}

void placed_add(void* p, uint16_t start, uint16_t blocks) {
  size_t i = slot_of(p);
  while (g_placed[i].p != nullptr) i = (i + 1) & (kSlots - 1);
  g_placed[i] = {p, start, blocks};
}

void placed_remove(Placed* e) {
  size_t hole = static_cast<size_t>(e - g_placed);
  g_placed[hole].p = nullptr;
  for (size_t i = (hole + 1) & (kSlots - 1); g_placed[i].p != nullptr; i = (i + 1) & (kSlots - 1)) {
    const size_t home = slot_of(g_placed[i].p);
    // Move the entry into the hole unless its home lies cyclically in (hole, i].
    const bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
    if (stays) continue;
    g_placed[hole] = g_placed[i];
    g_placed[i].p = nullptr;
    hole = i;
  }
}

// umm_malloc: malloc(0) returns NULL; a block no free run holds, NULL.
void* placed_alloc(size_t size, bool zero) {
  if (size == 0) return nullptr;
  const uint32_t n = blocks_for(size);
  const int start = n <= kMaxBlocks ? arena_take(n) : -1;
  if (start < 0) {
    esp_hil_sim::log("malloc(%zu) fails: no free block of %u bytes in the simulated heap", size, n * kBlock);
    return nullptr;
  }
  void* p = zero ? __real_calloc(1, size) : __real_malloc(size);
  if (!p) {
    arena_give(static_cast<uint32_t>(start), n);
    return nullptr;
  }
  placed_add(p, static_cast<uint16_t>(start), static_cast<uint16_t>(n));
  g_alloc_count++;
  g_live_count++;
  g_used_blocks += n;
  return p;
}

void placed_release(Placed* e) {
  arena_give(e->start, e->blocks);
  g_live_count--;
  g_used_blocks -= e->blocks;
  placed_remove(e);
}

// umm_info.c sqrt32: the integer square root, rounded down.
uint32_t isqrt(uint64_t v) {
  uint64_t r = 0;
  for (uint64_t bit = 1ull << 62; bit != 0; bit >>= 2) {
    if (v >= r + bit) {
      v -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
  }
  return static_cast<uint32_t>(r);
}

}  // namespace

extern "C" void* __wrap_malloc(size_t size) { return placed_alloc(size, false); }

extern "C" void* __wrap_calloc(size_t n, size_t size) {
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) return nullptr;
  return placed_alloc(total, true);
}

extern "C" void __wrap_free(void* p) {
  if (!p) return;
  if (Placed* e = placed_find(p)) placed_release(e);
  __real_free(p);  // a block libc made (strdup, getline) goes back to libc as it came
}

// umm_realloc may grow a block in place; the twin always moves it (new blocks first, so a
// failure leaves the old block as it was, as umm's does), so its layout after a realloc can
// differ from a board's.
extern "C" void* __wrap_realloc(void* p, size_t size) {
  if (!p) return placed_alloc(size, false);
  Placed* e = placed_find(p);
  if (!e) return __real_realloc(p, size);
  if (size == 0) {
    __wrap_free(p);
    return nullptr;
  }
  const uint32_t n = blocks_for(size);
  const int start = n <= kMaxBlocks ? arena_take(n) : -1;
  if (start < 0) {
    esp_hil_sim::log("realloc(%zu) fails: no free block of %u bytes in the simulated heap", size, n * kBlock);
    return nullptr;
  }
  void* q = __real_realloc(p, size);
  if (!q) {
    arena_give(static_cast<uint32_t>(start), n);
    return nullptr;
  }
  const uint16_t old_start = e->start;
  const uint16_t old_blocks = e->blocks;
  placed_remove(e);
  arena_give(old_start, old_blocks);
  g_used_blocks = g_used_blocks - old_blocks + n;
  g_alloc_count++;
  placed_add(q, static_cast<uint16_t>(start), static_cast<uint16_t>(n));
  return q;
}

extern "C" uint32_t esp_hil_sim_alloc_count(void) { return g_alloc_count; }
extern "C" uint32_t esp_hil_sim_alloc_live_count(void) { return g_live_count; }
extern "C" uint32_t esp_hil_sim_alloc_live_bytes(void) { return g_used_blocks * kBlock; }
extern "C" uint32_t esp_hil_sim_heap_total(void) { return heap_total(); }

namespace esp_hil_sim {

int heap_take(size_t size) {
  const uint32_t n = blocks_for(size);
  const int start = n <= kMaxBlocks ? arena_take(n) : -1;
  if (start >= 0) g_system_blocks += n;
  return start;
}

void heap_give(int block, size_t size) {
  if (block < 0) return;
  const uint32_t n = blocks_for(size);
  arena_give(static_cast<uint32_t>(block), n);
  g_system_blocks -= n;
}

uint32_t heap_system_bytes() { return g_system_blocks * kBlock; }

uint32_t heap_max_block() {
  arena_init();
  uint32_t most = 0;
  for (size_t i = 0; i < g_nfree; i++) most = g_free[i].len > most ? g_free[i].len : most;
  return most * kBlock;  // umm_max_block_size_core: the largest free run's blocks x 8
}

bool heap_fits(size_t size) { return blocks_for(size) * kBlock <= heap_max_block(); }

uint8_t heap_fragmentation() {
  // umm_info.c umm_fragmentation_metric_core: 100 - sqrt(sum of free runs²) * 100 / free
  // blocks, over the free runs in blocks; 0 with nothing free.
  arena_init();
  uint64_t blocks = 0;
  uint64_t squares = 0;
  for (size_t i = 0; i < g_nfree; i++) {
    blocks += g_free[i].len;
    squares += static_cast<uint64_t>(g_free[i].len) * g_free[i].len;
  }
  if (blocks == 0) return 0;
  return static_cast<uint8_t>(100 - static_cast<uint64_t>(isqrt(squares)) * 100 / blocks);
}

}  // namespace esp_hil_sim

// abi.cpp replaces only the four unaligned forms; an over-aligned plain new is treated like
// a plain one.
void* operator new(size_t size) { return counted_alloc(size, 0, OnFail::kReset); }
void* operator new[](size_t size) { return counted_alloc(size, 0, OnFail::kReset); }
void* operator new(size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size, 0, OnFail::kNull); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size, 0, OnFail::kNull); }
void* operator new(size_t size, std::align_val_t al) {
  return counted_alloc(size, static_cast<size_t>(al), OnFail::kReset);
}
void* operator new[](size_t size, std::align_val_t al) {
  return counted_alloc(size, static_cast<size_t>(al), OnFail::kReset);
}
void* operator new(size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<size_t>(al), OnFail::kNull);
}
void* operator new[](size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_alloc(size, static_cast<size_t>(al), OnFail::kNull);
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
