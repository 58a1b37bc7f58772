// The SDK's raw flash calls (tools/sdk/include/spi_flash.h of the core), over the twin's
// flash file (ESP_HIL_FLASH). As on the chip: addresses, sizes and buffers 4-byte aligned
// (anything else fails), a write only clears bits (erase a sector first), an erased byte
// reads 0xFF.
#pragma once

#include <stdint.h>

#define SPI_FLASH_SEC_SIZE 0x1000

typedef enum {
  SPI_FLASH_RESULT_OK,
  SPI_FLASH_RESULT_ERR,
  SPI_FLASH_RESULT_TIMEOUT
} SpiFlashOpResult;

extern "C" {
SpiFlashOpResult spi_flash_erase_sector(uint16_t sec);
SpiFlashOpResult spi_flash_write(uint32_t des_addr, uint32_t* src_addr, uint32_t size);
SpiFlashOpResult spi_flash_read(uint32_t src_addr, uint32_t* des_addr, uint32_t size);
}
