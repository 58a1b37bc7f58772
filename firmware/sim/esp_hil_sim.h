// Introspection only the host build has (guard uses with #ifdef ESP_HIL_SIM).
#pragma once

#include <stdint.h>

extern "C" {
// Allocations made through operator new / new[] and the firmware's malloc / calloc /
// realloc since the process started (a monotonic count: equal before and after a stretch
// of code = it did not allocate).
uint32_t esp_hil_sim_alloc_count(void);
// Those allocations that are live now, and the simulated heap's bytes they take (its
// 8-byte blocks, headers included).
uint32_t esp_hil_sim_alloc_live_count(void);
uint32_t esp_hil_sim_alloc_live_bytes(void);
// The simulated heap's total: getFreeHeap() = total - live bytes.
// ESP.getMaxFreeBlockSize() and ESP.getHeapFragmentation() say how it is split up.
uint32_t esp_hil_sim_heap_total(void);
}
