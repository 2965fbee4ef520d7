// VT-x detection at boot: reads CPUID and IA32_FEATURE_CONTROL and logs the
// outcome in one line.
#pragma once

namespace microhv::boot {

// True when VT-x can be used (possibly after microhv sets and locks
// IA32_FEATURE_CONTROL). Otherwise logs "VT-x not available: <reason>; <what
// to do>" and returns false.
bool detect_vmx();

}  // namespace microhv::boot
