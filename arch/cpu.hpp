// x86-64 instruction wrappers (inline asm). Target-only: include from *_hw.cpp
// and boot/, never from portable .cpp files (those are also built for the host).
#pragma once

#include <stdint.h>

namespace microhv::arch {

struct CpuidResult {
  uint32_t eax, ebx, ecx, edx;
};

// CPUID with an explicit subleaf in ECX (SDM Vol. 2A, CPUID).
inline CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidResult r;
  asm volatile("cpuid"
               : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
               : "a"(leaf), "c"(subleaf));
  return r;
}

// RDMSR/WRMSR #GP on an unimplemented MSR: check CPUID before touching one.
inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

inline void wrmsr(uint32_t msr, uint64_t value) {
  asm volatile("wrmsr"
               :
               : "c"(msr), "a"(static_cast<uint32_t>(value)),
                 "d"(static_cast<uint32_t>(value >> 32))
               : "memory");
}

inline uint64_t read_cr0() {
  uint64_t v;
  asm volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
inline void write_cr0(uint64_t v) {
  asm volatile("mov %0, %%cr0" : : "r"(v) : "memory");
}

inline uint64_t read_cr3() {
  uint64_t v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
inline void write_cr3(uint64_t v) {
  asm volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

inline uint64_t read_cr4() {
  uint64_t v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}
inline void write_cr4(uint64_t v) {
  asm volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

inline uint64_t read_rflags() {
  uint64_t v;
  asm volatile("pushfq; popq %0" : "=r"(v));
  return v;
}

inline void cli() {
  asm volatile("cli" : : : "memory");
}
inline void sti() {
  asm volatile("sti" : : : "memory");
}
inline void hlt() {
  asm volatile("hlt" : : : "memory");
}
inline void pause() {
  asm volatile("pause" : : : "memory");
}

inline uint64_t rdtsc() {
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// This CPU's local APIC id: the x2APIC id from CPUID 0xB when the leaf
// exists, else the 8-bit initial APIC id in CPUID.1:EBX[31:24] (SDM Vol. 3A
// 10.4.6).
inline uint32_t local_apic_id() {
  if (cpuid(0).eax >= 0xB && cpuid(0xB, 0).ebx != 0) return cpuid(0xB, 0).edx;
  return cpuid(1).ebx >> 24;
}

inline uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %w1, %b0" : "=a"(v) : "Nd"(port) : "memory");
  return v;
}
inline uint16_t inw(uint16_t port) {
  uint16_t v;
  asm volatile("inw %w1, %w0" : "=a"(v) : "Nd"(port) : "memory");
  return v;
}
inline uint32_t inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %w1, %k0" : "=a"(v) : "Nd"(port) : "memory");
  return v;
}
inline void outb(uint16_t port, uint8_t v) {
  asm volatile("outb %b0, %w1" : : "a"(v), "Nd"(port) : "memory");
}
inline void outw(uint16_t port, uint16_t v) {
  asm volatile("outw %w0, %w1" : : "a"(v), "Nd"(port) : "memory");
}
inline void outl(uint16_t port, uint32_t v) {
  asm volatile("outl %k0, %w1" : : "a"(v), "Nd"(port) : "memory");
}

}  // namespace microhv::arch
