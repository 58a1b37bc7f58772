// PROGMEM helpers of the ESP8266 core. The host has one address space, so
// every "flash" accessor is a plain memory access.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef PROGMEM
#define PROGMEM
#endif
#define PSTR(s) (s)
#define PGM_P const char*
#define PGM_VOID_P const void*

#define pgm_read_byte(addr) (*reinterpret_cast<const uint8_t*>(addr))
#define pgm_read_word(addr) (*reinterpret_cast<const uint16_t*>(addr))
#define pgm_read_dword(addr) (*reinterpret_cast<const uint32_t*>(addr))

#define memcpy_P memcpy
#define memcmp_P memcmp
#define strncpy_P strncpy
#define strcpy_P strcpy
#define strlen_P strlen
#define strnlen_P strnlen
#define strcmp_P strcmp
#define strncmp_P strncmp
#define sprintf_P sprintf
#define snprintf_P snprintf
#define vsnprintf_P vsnprintf
