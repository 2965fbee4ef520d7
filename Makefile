# microhv build. `make` builds build/microhv.efi; see README.md for the rest.
#
# Source discovery follows sub-folders, so adding a file needs no Makefile
# edit. The rule (README.md, "Architecture"): a source is target-only when it
# lives under vmx/hw/ or boot/efi/, or its name ends in _hw.cpp or .S; those
# are compiled into the EFI image only. Every other .cpp under the source
# folders is portable: compiled into the EFI image AND into the host tests.

SHELL := /bin/bash
BUILD := build

# Quiet build: one short line per step ("CXX file"); V=1 shows the commands.
V ?= 0
ifeq ($(V),1)
Q :=
step :=
else
Q := @
step = @printf '  %-7s %s\n' $(1) $(2)
endif
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

SRC_DIRS      := arch kernel hypercall synic vmx boot
TARGET_ONLY   := vmx/hw/% boot/efi/% %_hw.cpp
ALL_CPP       := $(sort $(shell find $(SRC_DIRS) -name '*.cpp'))
PORTABLE_SRCS := $(filter-out $(TARGET_ONLY),$(ALL_CPP))
HW_SRCS       := $(filter $(TARGET_ONLY),$(ALL_CPP))
ASM_SRCS      := $(sort $(shell find $(SRC_DIRS) -name '*.S'))

# ---------------------------------------------------------------- EFI image
EFI_INC   := /usr/include/efi
EFI_LIB   := /usr/lib
EFI_CXXFLAGS := -std=c++20 -O2 -g0 -Wall -Wextra -Werror=return-type -I. \
  -I$(EFI_INC) -I$(EFI_INC)/x86_64 -DMICROHV_VERSION=\"$(VERSION)\" \
  -ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics -fpic \
  -fshort-wchar -mno-red-zone -fno-stack-protector -maccumulate-outgoing-args \
  -mgeneral-regs-only -fno-asynchronous-unwind-tables -fno-builtin \
  -DGNU_EFI_USE_MS_ABI -DMICROHV_TARGET=1 -MMD -MP
EFI_ASFLAGS := -fpic -I. -DMICROHV_TARGET=1 -MMD -MP
EFI_LDFLAGS := -nostdlib -znocombreloc -shared -Bsymbolic -T boot/efi/efi.lds \
  $(EFI_LIB)/crt0-efi-x86_64.o
EFI_LIBS := -L$(EFI_LIB) -lefi -lgnuefi $(shell $(CXX) -print-libgcc-file-name)
EFI_SECTIONS := -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel \
  -j .rela -j .rel.* -j .rela.* -j .reloc

efi_obj = $(patsubst %,$(BUILD)/efi/%.o,$(1))

# $(call efi_app,NAME,SOURCES): build/NAME.efi from SOURCES.
define efi_app
$(BUILD)/$(1).so: $(call efi_obj,$(2)) boot/efi/efi.lds
	$$(call step,LD,$$@)
	$(Q)ld $(EFI_LDFLAGS) $(call efi_obj,$(2)) -o $$@.tmp $(EFI_LIBS)
	@scripts/check-relocs.sh $$@.tmp && mv $$@.tmp $$@
$(BUILD)/$(1).efi: $(BUILD)/$(1).so
	$$(call step,OBJCOPY,$$@)
	$(Q)objcopy $(EFI_SECTIONS) --target efi-app-x86_64 --subsystem=10 $$< $$@
endef

MICROHV_SRCS := $(PORTABLE_SRCS) $(HW_SRCS) $(ASM_SRCS)
$(eval $(call efi_app,microhv,$(MICROHV_SRCS)))

# The guest conformance suite and demo guests: EFI applications that run above
# microhv. They share only the TLFS definitions (hypercall/tlfs/), the
# formatter and the status names.
GUEST_SRCS := $(wildcard tests/guest/*.cpp tests/guest/*.S) kernel/base/format.cpp \
  hypercall/tlfs/status.cpp
ifneq ($(wildcard tests/guest/*.cpp),)
$(eval $(call efi_app,guest_suite,$(GUEST_SRCS)))
endif

# The VT-d integration test (tests/vtd/): the EFI application microhv starts
# in its vtd-selftest mode under QEMU TCG. It shares microhv's PCI and ACPI
# lookup and fault decoding, nothing else: the protection is microhv's.
VTD_TEST_SRCS := $(wildcard tests/vtd/*.cpp) vmx/vtd/faults.cpp boot/pci/scan.cpp \
  boot/efi/pci_config.cpp boot/acpi/reader.cpp boot/acpi/encoding.cpp \
  boot/efi/firmware_acpi.cpp kernel/base/log.cpp kernel/base/format.cpp \
  kernel/base/libc_hw.cpp arch/serial_hw.cpp
$(eval $(call efi_app,vtd_test,$(VTD_TEST_SRCS)))

$(BUILD)/efi/%.cpp.o: %.cpp
	@mkdir -p $(dir $@)
	$(call step,CXX,$<)
	$(Q)$(CXX) $(EFI_CXXFLAGS) -c $< -o $@
$(BUILD)/efi/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(call step,AS,$<)
	$(Q)$(CXX) $(EFI_ASFLAGS) -c $< -o $@

.DEFAULT_GOAL := all
all: deps $(BUILD)/microhv.efi

# ---------------------------------------------------------------- host tests
HOST_CXXFLAGS := -std=c++20 -g -Wall -Wextra -Werror=return-type -I. -DMICROHV_HOST=1 -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
UNIT_SRCS := $(wildcard tests/unit/*.cpp)
BENCH_SRCS := $(wildcard tests/bench/*.cpp)
# One libFuzzer binary per tests/fuzz/NAME_fuzz.cpp: build/fuzz_NAME.
FUZZ_TARGETS := $(patsubst tests/fuzz/%_fuzz.cpp,%,$(wildcard tests/fuzz/*_fuzz.cpp))
FUZZ_BINS := $(addprefix $(BUILD)/fuzz_,$(FUZZ_TARGETS))

host_obj = $(patsubst %,$(BUILD)/$(1)/%.o,$(2))

$(BUILD)/host/%.cpp.o: %.cpp
	@mkdir -p $(dir $@)
	$(call step,CXX,$<)
	$(Q)$(CXX) $(HOST_CXXFLAGS) -O2 -c $< -o $@
# Sanitized: the code under test at -O1 (the EPT and DMA-table walks are
# hot), the test files at -O0 (most of the build time is Catch2's expansion of
# them, halved at -O0); -g1 keeps line numbers in the sanitizer reports.
$(BUILD)/host-san/%.cpp.o: %.cpp
	@mkdir -p $(dir $@)
	$(call step,CXX-SAN,$<)
	$(Q)$(CXX) $(HOST_CXXFLAGS:-g=-g1) -O1 $(SAN_FLAGS) -c $< -o $@
$(BUILD)/host-san/tests/%.cpp.o: tests/%.cpp
	@mkdir -p $(dir $@)
	$(call step,CXX-SAN,$<)
	$(Q)$(CXX) $(HOST_CXXFLAGS:-g=-g1) -O0 $(SAN_FLAGS) -c $< -o $@
$(BUILD)/fuzz/%.cpp.o: %.cpp
	@mkdir -p $(dir $@)
	$(call step,CXX-FUZ,$<)
	$(Q)clang++ $(HOST_CXXFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

$(BUILD)/unit_tests: $(call host_obj,host,$(UNIT_SRCS) $(PORTABLE_SRCS))
	$(call step,LD,$@)
	$(Q)$(CXX) $^ -o $@
$(BUILD)/unit_tests_san: $(call host_obj,host-san,$(UNIT_SRCS) $(PORTABLE_SRCS))
	$(call step,LD,$@)
	$(Q)$(CXX) $(SAN_FLAGS) $^ -o $@
$(BUILD)/bench: $(call host_obj,host,$(BENCH_SRCS) $(PORTABLE_SRCS))
	$(call step,LD,$@)
	$(Q)$(CXX) $^ -o $@ -lbenchmark -lpthread
$(BUILD)/fuzz_%: $(BUILD)/fuzz/tests/fuzz/%_fuzz.cpp.o $(call host_obj,fuzz,$(PORTABLE_SRCS))
	$(call step,LD,$@)
	$(Q)clang++ -fsanitize=fuzzer,address,undefined $^ -o $@
# Objects made for a pattern rule are intermediate to make; keep them.
.SECONDARY: $(call host_obj,fuzz,$(PORTABLE_SRCS) $(wildcard tests/fuzz/*_fuzz.cpp))

# ---------------------------------------------------------------- commands
.PHONY: all deps test test-unit test-unit-optimised check-layers test-qemu test-vtd test-bochs test-load test-linux \
  test-linux-crash test-console test-fuzz-smoke run bench bench-guest fuzz format clean

deps:
	@scripts/install-deps.sh

test: deps
	@scripts/test-all.sh

# Every #include points down the layer order (README.md, "Architecture").
# A few seconds; make test runs it as part of test-unit.
check-layers:
	@scripts/check-layers.sh

# make test runs the tests once, under ASan+UBSan (a superset of what the
# optimised build checks, at half the build time of both);
# test-unit-optimised runs the -O2 build as well.
test-unit: deps check-layers $(BUILD)/unit_tests_san
	@scripts/heartbeat.sh unit_tests_san $(BUILD)/unit_tests_san

test-unit-optimised: deps check-layers $(BUILD)/unit_tests
	@scripts/heartbeat.sh unit_tests $(BUILD)/unit_tests

test-qemu: all
	@scripts/test-qemu.sh

# VT-d DMA isolation under QEMU TCG: microhv's take-over in vtd-selftest
# mode on q35 + intel-iommu (3- and 4-level tables) + edu, OVMF, and without
# intel-iommu (if-present goes on, required refuses); see scripts/test-vtd.sh.
test-vtd: deps all $(BUILD)/vtd_test.efi
	@scripts/test-vtd.sh

test-bochs: all
	@scripts/test-bochs.sh

# Load test under Bochs with 2 CPUs: 10,000 messages per CPU to the other
# CPU, SignalEvent storm, a stalling receiver (tests/guest/load.cpp).
test-load: all
	@scripts/test-load.sh 2

# Linux above microhv under Bochs, three boots at once (scripts/test-linux-stage.sh):
# reached as a user does, `make run GUEST=linux` driven through a
# pseudo-terminal (tests/linux/console_test.py: Ctrl-C while booting, then to
# the shell, commands, `exit`), the guest's checks judged from the session's
# serial log; the same kernel without microhv as the baseline; and a boot that
# ends in a kernel panic, which microhv reports before it parks the guest's VPs
# (about 4 to 6 minutes in all); see tests/linux/README.md.
test-linux: all
	@scripts/linux-guest.sh
	@scripts/test-linux-stage.sh

# The console test alone: Ctrl-C while booting, then sessions that leave with
# `exit`, `poweroff` and Ctrl-] (three Linux boots under Bochs: 8 to 15 minutes).
test-console: all
	@scripts/linux-guest.sh
	@tests/linux/console_test.py --sessions interrupt,shell,poweroff,leave

# The crash boot alone (make test-linux runs it beside the others).
test-linux-crash: all
	@scripts/linux-guest.sh
	@scripts/test-linux.sh --crash

# Every fuzz target for FUZZ_SECONDS each; prints executions/s and coverage.
FUZZ_SECONDS ?= 300
fuzz: deps $(FUZZ_BINS)
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: deps $(BUILD)/bench
	$(BUILD)/bench

# In-guest benchmark under Bochs: TSC ticks (= executed instructions there)
# per CPUID exit, failed PostMessage, and delivered PostMessage + EOM.
bench-guest: all
	@scripts/bench-guest.sh

# GUEST=linux: Debian's Linux above microhv, at a shell (scripts/run-linux.sh).
run: all
ifeq ($(GUEST),linux)
	@scripts/run-linux.sh
else
	@scripts/run.sh
endif

format:
	clang-format -i $(shell find boot arch kernel vmx hypercall synic tests -name '*.cpp' -o -name '*.hpp')

clean:
	rm -rf $(BUILD)

# A fuzzing smoke for `make test`: every target, FUZZ_SMOKE_SECONDS in all
# (default 60), shared equally; scripts/fuzz.sh reports progress every 10 s.
FUZZ_SMOKE_SECONDS ?= 60
test-fuzz-smoke: deps $(FUZZ_BINS)
	@scripts/fuzz.sh $$(( $(FUZZ_SMOKE_SECONDS) / $(words $(FUZZ_TARGETS)) )) $(FUZZ_TARGETS)

# Header dependencies written by the compiler (-MMD -MP).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
