// COM1 (16550 UART at I/O port 0x3F8), 115200 baud 8N1, polled transmit only.
// The log sink on the target; the signature of write() matches log::Sink.
#pragma once

#include <stddef.h>

namespace microhv::serial {

// Programs the UART. Safe to call again; waits for pending output first so
// the firmware's last characters are not cut off.
void init();

// Sends `len` bytes, turning each "\n" into "\r\n".
void write(const char* text, size_t len);

// Waits until the transmitter is completely empty (LSR bit 6), so nothing is
// lost if the machine powers off or the firmware reprograms the port next.
void flush();

}  // namespace microhv::serial
