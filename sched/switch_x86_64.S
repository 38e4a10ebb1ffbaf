/*
 * switch_x86_64.S - the context switch for x86-64 System V.
 *
 * void weft__ctx_switch(weft__ctx *from, weft__ctx *to)
 *
 * Saves only what the ABI says a callee must preserve: rbx, rbp, r12-r15,
 * the MXCSR control bits and the x87 control word. Everything else is
 * caller-saved, so the C caller has already spilled what it needs. The
 * stack pointer goes to from->sp; to->sp is loaded and the same frame shape
 * is popped from it. The frame, from the saved sp upward:
 *     [mxcsr:4 fpucw:4] r15 r14 r13 r12 rbx rbp <return address>
 * weft__ctx_init (context.c) builds that frame for a new context with r12 =
 * the entry function and the return address = weft__ctx_trampoline.
 */
#if defined(__x86_64__)
        .text
        .globl  weft__ctx_switch
        .hidden weft__ctx_switch
        .type   weft__ctx_switch, @function
        .p2align 4
weft__ctx_switch:
        .cfi_startproc
        endbr64
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        /* From here on rsp is the other context's; its frame has the same
         * shape, so the CFI offsets above still describe it. */
        movq    (%rsi), %rsp
        /* Always loaded: skipping the loads when the words match measured
         * slower here (11.0 -> 15.4-20.8 ns per round trip of two switches,
         * AMD EPYC VM): reading back what stmxcsr/fnstcw just stored
         * stalls longer than fldcw takes. */
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        /* Not ret: the return-stack predictor holds our caller's return
         * address, not the other context's, so a ret would mispredict on
         * every switch (about 10 ns here). An indirect jump is predicted
         * from its own history instead. */
        popq    %rcx
        .cfi_adjust_cfa_offset -8
        jmpq    *%rcx
        .cfi_endproc
        .size   weft__ctx_switch, .-weft__ctx_switch

/*
 * The first code a new context runs, entered by the ret above with rsp
 * 16-byte aligned. rip is marked undefined so debuggers, perf and
 * unwinders stop here instead of walking into garbage.
 */
        .globl  weft__ctx_trampoline
        .hidden weft__ctx_trampoline
        .type   weft__ctx_trampoline, @function
        .p2align 4
weft__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined %rip
        endbr64
        xorl    %ebp, %ebp
        callq   *%r12
        ud2     /* the entry function never returns */
        .cfi_endproc
        .size   weft__ctx_trampoline, .-weft__ctx_trampoline

/*
 * int weft__call_fenced(weft_fn fn, void *arg): calls fn(arg) and returns
 * its result, in a frame that unwinders treat as the bottom of the stack
 * (rip undefined, as in the trampoline above). A C++ exception escaping fn
 * therefore finds no handler beyond it and terminates, exactly as from a
 * task's first frame, instead of unwinding into whoever called weft: a
 * parent running a child inline on its own stack (weft_nursery_close), or
 * a worker running a weft_blocking body. Debuggers' backtraces stop here
 * too, which is where the task's own frames end.
 */
        .globl  weft__call_fenced
        .hidden weft__call_fenced
        .type   weft__call_fenced, @function
        .p2align 4
weft__call_fenced:
        .cfi_startproc
        .cfi_undefined %rip
        endbr64
        pushq   %rbp            /* keeps rsp 16-byte aligned at the call */
        .cfi_adjust_cfa_offset 8
        movq    %rdi, %rax
        movq    %rsi, %rdi
        callq   *%rax
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        ret
        .cfi_endproc
        .size   weft__call_fenced, .-weft__call_fenced

/*
 * void weft__call_on_stack(void (*fn)(void *), void *arg, void *top):
 * calls fn(arg) with the stack pointer at top (16-byte aligned down), and
 * returns on the caller's stack. No context switch: fn runs as part of the
 * caller's thread of execution, on a stack of its own. If fn parks, the
 * whole chain (fn's frames on the new stack, ours on the old one) is saved
 * and resumed as one context. rbp holds the old stack pointer across the
 * call (callee-saved, so a switch inside fn preserves it) and the CFA is
 * expressed through it, so debuggers walk from fn's frames back to ours.
 */
        .globl  weft__call_on_stack
        .hidden weft__call_on_stack
        .type   weft__call_on_stack, @function
        .p2align 4
weft__call_on_stack:
        .cfi_startproc
        endbr64
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        andq    $-16, %rdx
        movq    %rdx, %rsp
        movq    %rdi, %rax
        movq    %rsi, %rdi
        callq   *%rax
        movq    %rbp, %rsp
        .cfi_def_cfa_register %rsp
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        ret
        .cfi_endproc
        .size   weft__call_on_stack, .-weft__call_on_stack

/* No GNU property note: the switch jumps indirectly to return addresses
 * that carry no endbr64, and changes stacks under any shadow stack, so it
 * claims neither IBT nor SHSTK (the linker then clears them for the
 * library, which is the truth). */
#endif
        .section .note.GNU-stack, "", @progbits
