/* clockbench: nanoseconds per clock_gettime(CLOCK_MONOTONIC) above microhv,
 * reading time through the Hyper-V reference TSC page (no exit: the vDSO
 * scales the TSC with the page's scale and offset) and through
 * TIME_REF_COUNT (an RDMSR exit per read, inside a system call: what the
 * hyperv_clocksource_msr clocksource costs).
 *
 * Linux 6.1 registers only one Hyper-V clocksource -- the TSC page when it is
 * offered -- so the MSR path cannot be picked in
 * /sys/devices/system/clocksource/clocksource0/current_clocksource. Instead
 * microhv's test device (32-bit OUT to port 0x3000, control 0x10, with
 * `testdev = on`) makes the page read sequence 0, which the TLFS defines as
 * "use TIME_REF_COUNT": the kernel's and the vDSO's readers then fall back
 * to the MSR on every read. Both phases run in one boot.
 *
 * Output (one line each, parsed by tests/linux/init):
 *   clockbench: clocksource <name>
 *   clockbench: tsc-page <ns> ns per call (<n> calls)
 *   clockbench: msr <ns> ns per call (<n> calls)
 *   clockbench: ratio msr / tsc-page = <r>
 * Exit status 0 when both phases ran. Static, no dependencies. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/io.h>
#include <time.h>

enum { kTestdevPort = 0x3000, kControlTscInvalid = 0x10 };

static uint64_t ns_of(const struct timespec *t) {
  return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

/* Mean ns per clock_gettime over `calls` calls, timed by the same clock. */
static double measure(long calls) {
  struct timespec a, b, x;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < calls; ++i) clock_gettime(CLOCK_MONOTONIC, &x);
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (double)(ns_of(&b) - ns_of(&a)) / (double)calls;
}

static void testdev_tsc_page(int invalid) {
  outl((uint32_t)(kControlTscInvalid << 16) | (uint32_t)(invalid ? 1 : 0), kTestdevPort);
}

int main(void) {
  char name[64] = "?";
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f != NULL) {
    if (fgets(name, sizeof(name), f) != NULL) name[strcspn(name, "\n")] = '\0';
    fclose(f);
  }
  printf("clockbench: clocksource %s\n", name);
  if (ioperm(kTestdevPort, 4, 1) != 0) {
    perror("clockbench: ioperm(0x3000)");
    return 1;
  }
  measure(1000); /* warm up */
  const long page_calls = 200000, msr_calls = 5000;
  const double page_ns = measure(page_calls);
  testdev_tsc_page(1);
  const double msr_ns = measure(msr_calls);
  testdev_tsc_page(0);
  const double again_ns = measure(page_calls / 10);
  printf("clockbench: tsc-page %.1f ns per call (%ld calls)\n", page_ns, page_calls);
  printf("clockbench: msr %.1f ns per call (%ld calls)\n", msr_ns, msr_calls);
  printf("clockbench: tsc-page again %.1f ns per call (page valid again)\n", again_ns);
  if (page_ns <= 0) return 1;
  printf("clockbench: ratio msr / tsc-page = %.1f\n", msr_ns / page_ns);
  return 0;
}
