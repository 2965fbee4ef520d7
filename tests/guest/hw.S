/* Guest suite: interrupt entry stubs and fault recovery (AT&T syntax).
 *
 * Stubs: one 16-byte stub per vector, so C++ finds stub i at base + 16*i.
 *   guest_exc_stubs: vectors 0..31 (exceptions)
 *   guest_irq_stubs: vectors GUEST_IRQ_BASE..GUEST_IRQ_BASE+7 (SINT vectors)
 * Each stub pushes a dummy error code when the CPU pushes none, then the
 * vector, and jumps to the common path, which saves every general register
 * into a GuestFrame (see suite.hpp) and calls guest_trap(GuestFrame*).
 *
 * Recovery: guest_try(fn, arg, slot) stores its stack pointer in *slot (the
 * calling CPU's own word, so every CPU can have a region armed), calls
 * fn(arg) and returns 0; if a fault is taken inside fn while the try is
 * armed, guest_trap rewrites the interrupt frame to resume at
 * guest_try_landing on the stack pointer from *slot, and guest_try returns 1
 * instead (a longjmp through iretq). Either way *slot is 0 again after. */

#define GUEST_IRQ_BASE 0x50

        .text

.macro STUB_NOERR vec
        .balign 16
        pushq $0
        pushq $\vec
        jmp guest_trap_common
.endm

.macro STUB_ERR vec
        .balign 16
        pushq $\vec
        jmp guest_trap_common
.endm

        .balign 16
        .globl guest_exc_stubs
        .hidden guest_exc_stubs
guest_exc_stubs:
        STUB_NOERR 0
        STUB_NOERR 1
        STUB_NOERR 2
        STUB_NOERR 3
        STUB_NOERR 4
        STUB_NOERR 5
        STUB_NOERR 6
        STUB_NOERR 7
        STUB_ERR 8
        STUB_NOERR 9
        STUB_ERR 10
        STUB_ERR 11
        STUB_ERR 12
        STUB_ERR 13
        STUB_ERR 14
        STUB_NOERR 15
        STUB_NOERR 16
        STUB_ERR 17
        STUB_NOERR 18
        STUB_NOERR 19
        STUB_NOERR 20
        STUB_ERR 21
        STUB_NOERR 22
        STUB_NOERR 23
        STUB_NOERR 24
        STUB_NOERR 25
        STUB_NOERR 26
        STUB_NOERR 27
        STUB_NOERR 28
        STUB_ERR 29
        STUB_ERR 30
        STUB_NOERR 31

        .balign 16
        .globl guest_irq_stubs
        .hidden guest_irq_stubs
guest_irq_stubs:
        STUB_NOERR (GUEST_IRQ_BASE + 0)
        STUB_NOERR (GUEST_IRQ_BASE + 1)
        STUB_NOERR (GUEST_IRQ_BASE + 2)
        STUB_NOERR (GUEST_IRQ_BASE + 3)
        STUB_NOERR (GUEST_IRQ_BASE + 4)
        STUB_NOERR (GUEST_IRQ_BASE + 5)
        STUB_NOERR (GUEST_IRQ_BASE + 6)
        STUB_NOERR (GUEST_IRQ_BASE + 7)
        .balign 16
        .globl guest_irq_stubs_end
        .hidden guest_irq_stubs_end
guest_irq_stubs_end:

guest_trap_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        cld
        movq %rsp, %rdi
        movq %rsp, %rbx          /* callee-saved: survives the call */
        andq $-16, %rsp
        call guest_trap
        movq %rbx, %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp           /* vector and error code */
        iretq

/* int guest_try(void (*fn)(void*), void* arg, uint64_t* slot) */
        .globl guest_try
        .hidden guest_try
guest_try:
        pushq %rbx
        pushq %rbp
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        pushq %rdx               /* slot; also 16-byte alignment for the call */
        movq %rsp, (%rdx)
        movq %rdi, %rax
        movq %rsi, %rdi
        call *%rax
        xorl %eax, %eax
guest_try_out:
        popq %rdx
        movq $0, (%rdx)
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        ret

/* Entered through iretq with RSP = the value guest_try stored in *slot. */
        .globl guest_try_landing
        .hidden guest_try_landing
guest_try_landing:
        movl $1, %eax
        jmp guest_try_out

        .section .note.GNU-stack,"",@progbits
