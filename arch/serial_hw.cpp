#include <stdint.h>

#include "arch/cpu.hpp"
#include "arch/serial.hpp"

namespace microhv::serial {
namespace {

constexpr uint16_t kCom1 = 0x3F8;

// 16550 register offsets from the base port.
constexpr uint16_t kData = 0;          // THR (write) / divisor low with DLAB=1
constexpr uint16_t kIntEnable = 1;     // IER / divisor high with DLAB=1
constexpr uint16_t kFifoControl = 2;   // FCR
constexpr uint16_t kLineControl = 3;   // LCR
constexpr uint16_t kModemControl = 4;  // MCR
constexpr uint16_t kLineStatus = 5;    // LSR

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLcr8N1 = 0x03;
constexpr uint8_t kFcrEnableAndClear = 0x07;  // FIFO on, clear RX and TX FIFOs
constexpr uint8_t kMcrDtrRts = 0x03;
constexpr uint8_t kLsrThrEmpty = 0x20;          // room for another byte
constexpr uint8_t kLsrTransmitterEmpty = 0x40;  // FIFO and shift register empty

constexpr uint16_t kDivisor115200 = 1;  // 1.8432 MHz / 16 / 115200

// Bounds every wait: a missing UART reads 0xFF (never blocks) but a broken
// one must not hang the boot either.
constexpr uint32_t kMaxPolls = 1000000;

uint8_t read_reg(uint16_t reg) {
  return arch::inb(kCom1 + reg);
}
void write_reg(uint16_t reg, uint8_t v) {
  arch::outb(kCom1 + reg, v);
}

void wait_for(uint8_t lsr_bits) {
  for (uint32_t i = 0; i < kMaxPolls && (read_reg(kLineStatus) & lsr_bits) == 0; ++i) {
    arch::pause();
  }
}

void put(char c) {
  wait_for(kLsrThrEmpty);
  write_reg(kData, static_cast<uint8_t>(c));
}

}  // namespace

void init() {
  flush();
  write_reg(kIntEnable, 0);  // polled: no UART interrupts
  write_reg(kLineControl, kLcrDlab);
  write_reg(kData, kDivisor115200 & 0xFF);
  write_reg(kIntEnable, kDivisor115200 >> 8);
  write_reg(kLineControl, kLcr8N1);
  write_reg(kFifoControl, kFcrEnableAndClear);
  write_reg(kModemControl, kMcrDtrRts);
}

void write(const char* text, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    if (text[i] == '\n') put('\r');
    put(text[i]);
  }
}

void flush() {
  wait_for(kLsrTransmitterEmpty);
}

}  // namespace microhv::serial
