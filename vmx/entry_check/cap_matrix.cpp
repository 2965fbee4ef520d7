// The capability matrix data (see cap_matrix.hpp). Three kinds of rows:
//  - real processors: values printed by VirtualBox's VT-x set-up into
//    public VBox.log files (its "HM: MSR_IA32_VMX_..." lines);
//  - Bochs 2.7 models: read by microhv itself at take-over (its "VMX: ..."
//    log lines) when booted with `cpu: model=NAME` (scripts/vmx-caps.sh);
//    IA32_VMX_VMFUNC read where PROCBASED_CTLS2 allows VM functions;
//    MAXPHYADDR from microhv's "40-bit physical" line;
//  - QEMU/KVM nested: QEMU's named CPU models (target/i386/cpu.c,
//    `.features[FEAT_VMX_*]`, version 1 of each model) translated into MSR
//    values the way QEMU's kvm_msr_entry_add_vmx (target/i386/kvm/kvm.c)
//    hands them to KVM, with the fields QEMU takes from KVM's nested VMX
//    (arch/x86/kvm/vmx/nested.c): VMCS revision 0x11e57ed0, 4 KiB region,
//    WB memory type, preemption-timer rate 5, WB EPT paging structures.
#include "vmx/entry_check/cap_matrix.hpp"

namespace microhv::vmx {
namespace {

constexpr uint8_t kLa57Bit = 12;  // CR4.LA57: in CR4_FIXED1 exactly when CPUID has LA57

constexpr CapabilitySet msr_dump(uint64_t basic, uint64_t pin, uint64_t proc, uint64_t exit,
                                 uint64_t entry, uint64_t true_pin, uint64_t true_proc,
                                 uint64_t true_exit, uint64_t true_entry, uint64_t proc2,
                                 uint64_t ept_vpid, uint64_t misc, uint64_t cr4_fixed1,
                                 uint64_t vmfunc, uint8_t maxphyaddr) {
  CapabilitySet s;
  s.msrs = VmxCapabilities{basic,      pin,        proc,       exit,      entry,    true_pin,
                           true_proc,  true_exit,  true_entry, proc2,     ept_vpid, misc,
                           0x80000021, 0xFFFFFFFF, 0x2000,     cr4_fixed1};
  s.vmfunc = vmfunc;
  s.maxphyaddr = maxphyaddr;
  s.la57 = ((cr4_fixed1 >> kLa57Bit) & 1) != 0;
  return s;
}

// Every Bochs 2.7 model shares these (Bochs' cpu/vmx.cc builds them from
// the model's VMX feature set); the rows below differ in the rest.
constexpr uint64_t kBochsPin = 0x0000007F00000016;
constexpr uint64_t kBochsProc = 0xF7F9FFFE0401E172;  // no "activate tertiary"
constexpr uint64_t kBochsTrueProc = 0xF7F9FFFE04006172;
constexpr uint64_t kBochsExit = 0x007FFFFF00036DFF;
constexpr uint64_t kBochsTrueExit = 0x007FFFFF00036DFB;
constexpr uint64_t kBochsEntry = 0x0000FFFF000011FF;
constexpr uint64_t kBochsTrueEntry = 0x0000FFFF000011FB;
constexpr uint64_t kBochsBasic2b = 0x00D810000000002B;

constexpr CapabilitySet bochs(uint64_t proc2, uint64_t ept_vpid, uint64_t misc, uint64_t cr4_fixed1,
                              uint64_t vmfunc) {
  return msr_dump(kBochsBasic2b, kBochsPin, kBochsProc, kBochsExit, kBochsEntry, kBochsPin,
                  kBochsTrueProc, kBochsTrueExit, kBochsTrueEntry, proc2, ept_vpid, misc,
                  cr4_fixed1, vmfunc, 40);
}

// ---- QEMU named models -> MSR values.
struct QemuModel {
  uint64_t basic;  // FEAT_VMX_BASIC: bit 54 INS/OUTS info, bit 55 TRUE_* MSRs
  uint32_t pin, proc, proc2, exit, entry;
  uint64_t misc, ept_vpid, vmfunc;
  uint64_t cr4_fixed1;  // what KVM derives from the model's CPUID (see each row)
};

// A control may be 0 unless it is a default1 bit the model does not list,
// and 1 if the model lists it or it is a default1 bit (QEMU's
// make_vmx_msr_value; default1 values from SDM Vol. 3D A.2).
constexpr uint64_t true_ctls(uint32_t default1, uint32_t features) {
  const uint32_t must_be_one = default1 & ~features;
  const uint32_t can_be_one = default1 | features;
  return must_be_one | (static_cast<uint64_t>(can_be_one) << 32);
}

constexpr uint32_t kPinDefault1 = 0x16;
constexpr uint32_t kProcDefault1 = 0x0401E172;
constexpr uint32_t kExitDefault1 = 0x00036DFF;
constexpr uint32_t kEntryDefault1 = 0x000011FF;
constexpr uint64_t kKvmBasic = 0x11E57ED0 | (0x1000ull << 32) | (6ull << 50);
constexpr uint64_t kKvmMiscRate = 5;
constexpr uint64_t kKvmEptWb = 1ull << 14;
constexpr uint64_t kHostAddressSpace = static_cast<uint64_t>(1u << 9) << 32;  // models with LM

constexpr CapabilitySet qemu_kvm(const QemuModel& q) {
  const bool has_true = ((q.basic >> 55) & 1) != 0;
  const uint64_t pin = true_ctls(kPinDefault1, q.pin);
  const uint64_t proc = true_ctls(kProcDefault1, q.proc);
  const uint64_t exit = true_ctls(kExitDefault1, q.exit) | kHostAddressSpace;
  const uint64_t entry = true_ctls(kEntryDefault1, q.entry);
  const bool ept = (q.proc2 & (1u << 1)) != 0;
  // KVM answers the legacy MSRs with the TRUE values plus the default1 bits.
  CapabilitySet s = msr_dump(
      kKvmBasic | q.basic, pin | kPinDefault1, proc | kProcDefault1, exit | kExitDefault1,
      entry | kEntryDefault1, has_true ? pin : 0, has_true ? proc : 0, has_true ? exit : 0,
      has_true ? entry : 0, static_cast<uint64_t>(q.proc2) << 32,
      q.ept_vpid | (ept ? kKvmEptWb : 0), q.misc | kKvmMiscRate, q.cr4_fixed1, q.vmfunc, 40);
  return s;
}

// QEMU's feature-word bits (target/i386/cpu.h), named as the SDM does.
namespace qb {
constexpr uint64_t kInsOuts = 1ull << 54, kTrueCtls = 1ull << 55;
constexpr uint32_t kPinAll =
    (1u << 0) | (1u << 3) | (1u << 5) | (1u << 6);  // ext-int, NMI, vNMI, timer
constexpr uint32_t kPosted = 1u << 7;
// Interrupt/NMI window, TSC offset, HLT, INVLPG, MWAIT, RDPMC, RDTSC,
// CR8 load/store, TPR shadow, MOV-DR, unconditional I/O, I/O and MSR
// bitmaps, MONITOR, PAUSE, secondary controls.
constexpr uint32_t kProcBase = (1u << 2) | (1u << 3) | (1u << 7) | (1u << 9) | (1u << 10) |
                               (1u << 11) | (1u << 12) | (1u << 19) | (1u << 20) | (1u << 21) |
                               (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25) | (1u << 28) |
                               (1u << 29) | (1u << 30) | (1u << 31);
constexpr uint32_t kCr3Exiting = (1u << 15) | (1u << 16);
constexpr uint32_t kMtf = 1u << 27;
constexpr uint32_t kEntryAll = (1u << 2) | (1u << 9) | (1u << 13) | (1u << 14) | (1u << 15);
// Save debug, load PERF_GLOBAL_CTRL, ack interrupt, save/load PAT and EFER, save timer.
constexpr uint32_t kExitAll = (1u << 2) | (1u << 12) | (1u << 15) | (1u << 18) | (1u << 19) |
                              (1u << 20) | (1u << 21) | (1u << 22);
constexpr uint64_t kMiscHlt = 1ull << 6, kMiscLma = 1ull << 5, kMiscVmwrite = 1ull << 29;
// Execute-only, 4-level walk, 2M and 1G pages, INVEPT (single, all),
// INVVPID (address, single, all, single keeping globals).
constexpr uint64_t kEptBase = (1ull << 0) | (1ull << 6) | (1ull << 14) | (1ull << 16) |
                              (1ull << 17) | (1ull << 20) | (1ull << 25) | (1ull << 26) |
                              (1ull << 32) | (1ull << 40) | (1ull << 41) | (1ull << 42) |
                              (1ull << 43);
constexpr uint64_t kEptAd = 1ull << 21, kEptWalk5 = 1ull << 7;
// Secondary: APIC accesses 0, EPT 1, descriptor tables 2, RDTSCP 3, x2APIC 4,
// VPID 5, WBINVD 6, UG 7, APIC registers 8, VID 9, RDRAND 11, INVPCID 12,
// VMFUNC 13, shadow VMCS 14, RDSEED 16, PML 17, XSAVES 20.
constexpr uint32_t kSecNehalem = 0x7F;  // no unrestricted guest
constexpr uint32_t kSecIcelake =
    0xFF | (1u << 8) | (1u << 9) | (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14);
constexpr uint32_t kSecSkylake = kSecIcelake | (1u << 16) | (1u << 17);
constexpr uint32_t kSecSapphire = kSecSkylake | (1u << 20);
}  // namespace qb

// CR4_FIXED1 as KVM computes it from CPUID: PCE always; VME/PVI, TSD, DE,
// PSE, PAE, MCE, PGE, OSFXSR, OSXMMEXCPT from CPUID.1:EDX (0x7FF with PCE);
// VMXE with +vmx (0x2000); then PCIDE 0x20000, OSXSAVE 0x40000, FSGSBASE
// 0x10000, SMEP 0x100000, SMAP 0x200000, PKE 0x400000, UMIP 0x800, LA57
// 0x1000 where the model's CPUID lists them.
constexpr uint64_t kCr4Core2 = 0x27FF;
constexpr uint64_t kCr4Skylake = 0x7727FF;  // + PCID XSAVE FSGSBASE SMEP SMAP PKU
constexpr uint64_t kCr4Icelake = 0x773FFF;  // + UMIP LA57

constexpr QemuModel kQemuPenryn{qb::kInsOuts,
                                (1u << 0) | (1u << 3) | (1u << 5),
                                qb::kProcBase,
                                (1u << 0) | (1u << 6),
                                (1u << 15) | (1u << 12),
                                (1u << 9) | (1u << 13),
                                qb::kMiscHlt,
                                0,
                                0,
                                kCr4Core2};
constexpr QemuModel kQemuNehalem{qb::kInsOuts | qb::kTrueCtls,
                                 qb::kPinAll,
                                 qb::kProcBase | qb::kCr3Exiting | qb::kMtf,
                                 qb::kSecNehalem,
                                 qb::kExitAll,
                                 qb::kEntryAll,
                                 qb::kMiscHlt,
                                 qb::kEptBase,
                                 0,
                                 kCr4Core2};
// The server models share everything but the secondary controls, EPT
// capabilities, VM functions and CPUID (CR4_FIXED1).
constexpr QemuModel qemu_server(uint32_t proc2, uint64_t ept_vpid, uint64_t vmfunc,
                                uint64_t cr4_fixed1) {
  return QemuModel{qb::kInsOuts | qb::kTrueCtls,
                   qb::kPinAll | qb::kPosted,
                   qb::kProcBase | qb::kCr3Exiting | qb::kMtf,
                   proc2,
                   qb::kExitAll,
                   qb::kEntryAll,
                   qb::kMiscHlt | qb::kMiscLma | qb::kMiscVmwrite,
                   ept_vpid,
                   vmfunc,
                   cr4_fixed1};
}
constexpr QemuModel kQemuSkylakeServer =
    qemu_server(qb::kSecSkylake, qb::kEptBase | qb::kEptAd, 0, kCr4Skylake);
constexpr QemuModel kQemuIcelakeServer =
    qemu_server(qb::kSecIcelake, qb::kEptBase | qb::kEptAd, 0, kCr4Icelake);
// VM function 0 (EPTP switching) in FEAT_VMX_VMFUNC.
constexpr QemuModel kQemuSapphireRapids =
    qemu_server(qb::kSecSapphire, qb::kEptBase | qb::kEptAd | qb::kEptWalk5, 1, kCr4Icelake);

constexpr const char* kBochsSource =
    "Bochs 2.7 (Debian), cpu: model as named, read by microhv at take-over (scripts/vmx-caps.sh)";
constexpr const char* kQemuSource =
    "QEMU target/i386/cpu.c .features[FEAT_VMX_*] of the model (v1), translated as "
    "target/i386/kvm/kvm.c kvm_msr_entry_add_vmx does, KVM nested fixed fields";

const MatrixEntry kMatrix[] = {
    // ---- real processors
    {"real:core-i7-9750h", CapOrigin::kRealCpu,
     "VBox.log (VirtualBox 6.1.16) in the VirtualBox forum thread \"Vbox 6.1 Black Screen on "
     "Startup Ubuntu 20.04\", 2021-01-14: MSI GS65 Stealth 9SE, CPUID.1:EAX 000906EA (Coffee "
     "Lake-H), 39-bit physical addresses",
     msr_dump(0x00DA040000000004, 0x0000007F00000016, 0xFFF9FFFE0401E172, 0x01FFFFFF00036DFF,
              0x0003FFFF000011FF, 0x0000007F00000016, 0xFFF9FFFE04006172, 0x01FFFFFF00036DFB,
              0x0003FFFF000011FB, 0x005FBCFF00000000, 0x00000F0106734141, 0x7004C1E7, 0x3727FF, 1,
              39)},
    {"real:ivy-bridge-306a9", CapOrigin::kRealCpu,
     "VBox.log (VirtualBox 7.2.12, Linux host) quoted in a public support transcript: "
     "CPUID.1:EAX 000306A9 (Ivy Bridge, family 6 model 58), 4 cores / 8 threads, 36-bit "
     "physical addresses; no IA32_VMX_VMFUNC (VM functions not allowed)",
     msr_dump(0x00DA040000000010, 0x0000007F00000016, 0xFFF9FFFE0401E172, 0x007FFFFF00036DFF,
              0x0000FFFF000011FF, 0x0000007F00000016, 0xFFF9FFFE04006172, 0x007FFFFF00036DFB,
              0x0000FFFF000011FB, 0x000008FF00000000, 0x00000F0106114141, 0x100401E5, 0x1767FF, 0,
              36)},
    // ---- Bochs 2.7 models with VMX, EPT and unrestricted guest
    {"bochs:corei5_arrandale_m520", CapOrigin::kBochs, kBochsSource,
     bochs(0x000000FF00000000, 0x00000F0106114141, 0x401E0, 0x67FF, 0)},
    {"bochs:corei7_sandy_bridge_2600k", CapOrigin::kBochs, kBochsSource,
     bochs(0x000000FF00000000, 0x00000F0106114141, 0x401E0, 0x627FF, 0)},
    {"bochs:corei7_ivy_bridge_3770k", CapOrigin::kBochs, kBochsSource,
     bochs(0x000008FF00000000, 0x00000F0106114141, 0x401E0, 0x1727FF, 0)},
    {"bochs:corei7_haswell_4770", CapOrigin::kBochs, kBochsSource,
     bochs(0x00047FFF00000000, 0x00000F0106334141, 0x200401E0, 0x1727FF, 1)},
    {"bochs:broadwell_ult", CapOrigin::kBochs, kBochsSource,
     bochs(0x00057FFF00000000, 0x00000F0106334141, 0x200401E0, 0x3727FF, 1)},
    {"bochs:corei7_skylake_x", CapOrigin::kBochs, kBochsSource,
     bochs(0x02177FFF00000000, 0x00000F0106334141, 0x600401E0, 0x3727FF, 1)},
    {"bochs:corei3_cnl", CapOrigin::kBochs, kBochsSource,
     bochs(0x02157CFF00000000, 0x00000F0106334141, 0x600401E0, 0x772FFF, 1)},
    {"bochs:corei7_icelake_u", CapOrigin::kBochs, kBochsSource,
     msr_dump(0x00D8100000000004, kBochsPin, 0xFFF9FFFE0401E172, kBochsExit, kBochsEntry, kBochsPin,
              0xFFF9FFFE04006172, kBochsTrueExit, kBochsTrueEntry, 0x02977FFF00000000,
              0x00000F0106334141, 0x600401E0, 0x772FFF, 1, 40)},
    {"bochs:tigerlake", CapOrigin::kBochs, kBochsSource,
     msr_dump(0x01D8100000000004, kBochsPin, 0xFFF9FFFE0401E172, 0x107FFFFF00036DFF,
              0x0010FFFF000011FF, kBochsPin, 0xFFF9FFFE04006172, 0x107FFFFF00036DFB,
              0x0010FFFF000011FB, 0x02977FFF00000000, 0x00000F0106B34141, 0x600401E0, 0xF72FFF, 1,
              40)},
    // ---- Bochs 2.7 models microhv must refuse
    {"bochs:corei5_lynnfield_750", CapOrigin::kBochs, kBochsSource,
     bochs(0x0000007F00000000, 0x00000F0106114141, 0x401E0, 0x67FF, 0)},
    {"bochs:core2_penryn_t9600", CapOrigin::kBochs,
     "Bochs 2.7, cpu: model=core2_penryn_t9600 (IA32_VMX_EPT_VPID_CAP does not exist: "
     "PROCBASED_CTLS2 allows neither EPT nor VPID, and reading it #GPs)",
     msr_dump(kBochsBasic2b, 0x0000003F00000016, kBochsProc, 0x0003FFFF00036DFF, 0x00003FFF000011FF,
              0x0000003F00000016, kBochsTrueProc, 0x0003FFFF00036DFB, 0x00003FFF000011FB,
              0x0000004100000000, 0, 0x401E0, 0x467FF, 0, 40)},
    {"bochs:bx_generic", CapOrigin::kBochs, kBochsSource,
     msr_dump(kBochsBasic2b, 0x0000003F00000016, kBochsProc, 0x0003EFFF00036DFF, 0x00001FFF000011FF,
              0x0000003F00000016, kBochsTrueProc, 0x0003EFFF00036DFB, 0x00001FFF000011FB,
              0x0000004900000000, 0, 0x401E0, 0x27FF, 0, 40)},
    // ---- QEMU/KVM nested, named CPU models
    {"qemu-kvm:Skylake-Server", CapOrigin::kQemuKvm, kQemuSource, qemu_kvm(kQemuSkylakeServer)},
    // Cascadelake-Server v1 lists exactly Skylake-Server's VMX feature words.
    {"qemu-kvm:Cascadelake-Server", CapOrigin::kQemuKvm, kQemuSource, qemu_kvm(kQemuSkylakeServer)},
    {"qemu-kvm:Icelake-Server", CapOrigin::kQemuKvm, kQemuSource, qemu_kvm(kQemuIcelakeServer)},
    {"qemu-kvm:SapphireRapids", CapOrigin::kQemuKvm, kQemuSource, qemu_kvm(kQemuSapphireRapids)},
    {"qemu-kvm:Nehalem", CapOrigin::kQemuKvm, kQemuSource, qemu_kvm(kQemuNehalem)},
    {"qemu-kvm:Penryn", CapOrigin::kQemuKvm, kQemuSource, qemu_kvm(kQemuPenryn)},
};

constexpr uint32_t kMatrixSize = sizeof(kMatrix) / sizeof(kMatrix[0]);

bool same_name(const char* a, const char* b) {
  while (*a != 0 && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

}  // namespace

uint32_t capability_matrix_size() {
  return kMatrixSize;
}

const MatrixEntry& capability_matrix(uint32_t index) {
  return kMatrix[index < kMatrixSize ? index : 0];
}

const MatrixEntry* find_capability_set(const char* name) {
  for (const MatrixEntry& e : kMatrix) {
    if (same_name(e.name, name)) return &e;
  }
  return nullptr;
}

}  // namespace microhv::vmx
