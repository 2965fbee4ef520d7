// Remote TLB flushes on the machine (the protocol: vmx/tlb_flush.hpp): the
// core's GuestTlb, and the owner's side -- each VP serving its own inbox of
// flush requests with INVVPID for its own VPID.
#pragma once

#include "kernel/base/log.hpp"
#include "kernel/platform/tlb.hpp"

namespace microhv::vmx::hw {

struct Host;
struct Vcpu;

class HwTlb final : public GuestTlb {
 public:
  explicit HwTlb(Host& host) : host_(host) {}
  // Runs on the caller's CPU, in its VMCALL exit, without any lock held.
  bool flush(VpIndex self, VpMask targets, const TlbFlushRequest& what) override;

 private:
  Host& host_;
  log::RateLimit first_logged_{1};     // the first remote flush, as evidence it is used
  log::RateLimit timeouts_logged_{8};  // a stuck VP makes every flush time out
};

// Takes this VP's flush requests, invalidates, acknowledges. Runs before
// every VM entry and in every host-side wait of this CPU (a flush waiting
// for acknowledgments, an INIT waiting for its target).
void serve_tlb_inbox(Vcpu& v);

// After an INIT the VP keeps no translation (a real INIT would have
// flushed): every one of its VPID goes, and what it was asked is done.
void flush_after_init(Vcpu& v);

}  // namespace microhv::vmx::hw
