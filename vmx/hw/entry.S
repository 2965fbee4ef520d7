/* microhv VT-x entry/exit paths (AT&T syntax, SysV ABI).
 *
 *  microhv_virtualize   hand the machine to the host side; the guest (the
 *                       firmware) resumes at its label 1 as if the call returned 0
 *  microhv_vmexit_stub  HOST_RIP: saves every guest GPR into the per-VP frame
 *                       HOST_RSP points at, runs microhv_vmexit on the host
 *                       stack, restores the GPRs, checks the VP's inbox one
 *                       last time and VMRESUMEs
 *  microhv_exception_stubs  host IDT entry points, 16 bytes apart
 *  microhv_*_safe       RDMSR/WRMSR/XSETBV that return 1 instead of faulting
 */
        .text

/* Frame layout = struct VcpuFrame (vmx/hw/host.hpp): struct GuestRegs
   (vmx/exits.hpp: rax rcx rdx rbx rsp rbp rsi rdi r8..r15), host_stack_top
   at 128, the VP's RemoteQueue at 136 (its `work` word first). */
.macro SAVE_GPRS
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        push    %r11
        push    %r10
        push    %r9
        push    %r8
        push    %rdi
        push    %rsi
        push    %rbp
        sub     $8, %rsp            /* rsp slot: the VMCS holds the guest RSP */
        push    %rbx
        push    %rdx
        push    %rcx
        push    %rax
.endm

.macro RESTORE_GPRS
        pop     %rax
        pop     %rcx
        pop     %rdx
        pop     %rbx
        add     $8, %rsp
        pop     %rbp
        pop     %rsi
        pop     %rdi
        pop     %r8
        pop     %r9
        pop     %r10
        pop     %r11
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
.endm

/* uint64_t microhv_virtualize(CpuLaunch* rdi, entry rsi, host_cr3 rdx, host_rsp rcx) */
        .globl  microhv_virtualize
        .type   microhv_virtualize, @function
microhv_virtualize:
        push    %rbp
        push    %rbx
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        pushfq
        mov     %rsp, 0(%rdi)       /* guest RSP */
        lea     1f(%rip), %rax
        mov     %rax, 8(%rdi)       /* guest RIP */
        mov     (%rsp), %rax
        mov     %rax, 16(%rdi)      /* guest RFLAGS */
        mov     %rsp, %r12
        mov     %cr3, %r13
        cli
        mov     %rdx, %cr3
        mov     %rcx, %rsp
        call    *%rsi               /* returns only if virtualization failed */
        mov     %r13, %cr3
        mov     %r12, %rsp
        popfq
        jmp     2f
1:      /* The guest starts here: RSP/RIP/RFLAGS from the VMCS, the firmware's
           CR3/GDT/IDT, callee-saved registers still on this stack. */
        popfq
        xor     %eax, %eax
2:      pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbx
        pop     %rbp
        ret
        .size   microhv_virtualize, .-microhv_virtualize

/* VM exit: RSP = HOST_RSP = &frame->host_stack_top (end of the GPR area).
   Right before VMRESUME, with the guest GPRs loaded, frame->remote.work
   (offset 136 = 8(%rsp)) is tested once more: another CPU may have posted
   into this VP's inbox (vmx/smp.hpp) after microhv_vmexit drained it. If so
   the GPRs are saved again and microhv_reenter drains it (no exit to
   handle). An NMI the host takes between microhv_entry_check and VMRESUME
   resumes at microhv_entry_check (microhv_host_exception), so a kick that
   lands after the test is not lost either. */
        .globl  microhv_vmexit_stub, microhv_entry_check, microhv_entry_vmresume
        .type   microhv_vmexit_stub, @function
microhv_vmexit_stub:
        SAVE_GPRS
        mov     %rsp, %rdi          /* GuestRegs* */
        mov     128(%rdi), %rsp     /* host stack */
        cld
        call    microhv_vmexit      /* returns the frame to resume */
.Lresume:
        mov     %rax, %rsp
        RESTORE_GPRS
microhv_entry_check:
        cmpl    $0, 8(%rsp)         /* frame->remote.work */
        jne     .Lreenter
microhv_entry_vmresume:
        vmresume
        /* VMRESUME failed: report (never returns). */
        pushfq
        pop     %rsi
        lea     -128(%rsp), %rdi
        mov     (%rsp), %rsp        /* host_stack_top */
        call    microhv_vmresume_failed
3:      cli
        hlt
        jmp     3b
.Lreenter:
        SAVE_GPRS                   /* same layout as at a VM exit */
        mov     %rsp, %rdi
        mov     128(%rdi), %rsp
        cld
        call    microhv_reenter     /* drains the inbox; returns the frame */
        jmp     .Lresume
        .size   microhv_vmexit_stub, .-microhv_vmexit_stub

/* Host exceptions and interrupts. Each stub pushes an error code (0 when the
   CPU does not) and the vector; the common path saves the GPRs, calls
   microhv_host_exception(frame) and IRETs (it returns only for events the
   host survives: NMI, fixed-up faults of the *_safe routines). */
.macro STUB vec
        .align  16
        .if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
        .else
        pushq   $0
        .endif
        pushq   $\vec
        jmp     host_exception_common
.endm

        .align  16
        .globl  microhv_exception_stubs
microhv_exception_stubs:
        .altmacro
        .set    vec, 0
        .rept   256
        STUB    %vec
        .set    vec, vec + 1
        .endr
        .noaltmacro

host_exception_common:
        SAVE_GPRS
        mov     %rsp, %rdi
        mov     %rsp, %rbx
        and     $-16, %rsp
        cld
        call    microhv_host_exception
        mov     %rbx, %rsp
        RESTORE_GPRS
        add     $16, %rsp           /* vector, error code */
        iretq

/* int microhv_rdmsr_safe(uint32_t msr, uint64_t* value) */
        .globl  microhv_rdmsr_safe, microhv_rdmsr_insn, microhv_rdmsr_fixup
microhv_rdmsr_safe:
        mov     %edi, %ecx
microhv_rdmsr_insn:
        rdmsr
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, (%rsi)
        xor     %eax, %eax
        ret
microhv_rdmsr_fixup:
        mov     $1, %eax
        ret

/* int microhv_wrmsr_safe(uint32_t msr, uint64_t value) */
        .globl  microhv_wrmsr_safe, microhv_wrmsr_insn, microhv_wrmsr_fixup
microhv_wrmsr_safe:
        mov     %edi, %ecx
        mov     %esi, %eax
        mov     %rsi, %rdx
        shr     $32, %rdx
microhv_wrmsr_insn:
        wrmsr
        xor     %eax, %eax
        ret
microhv_wrmsr_fixup:
        mov     $1, %eax
        ret

/* int microhv_xsetbv_safe(uint32_t index, uint64_t value) */
        .globl  microhv_xsetbv_safe, microhv_xsetbv_insn, microhv_xsetbv_fixup
microhv_xsetbv_safe:
        mov     %edi, %ecx
        mov     %esi, %eax
        mov     %rsi, %rdx
        shr     $32, %rdx
microhv_xsetbv_insn:
        xsetbv
        xor     %eax, %eax
        ret
microhv_xsetbv_fixup:
        mov     $1, %eax
        ret

        .section .note.GNU-stack, "", @progbits
