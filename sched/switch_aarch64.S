/*
 * switch_aarch64.S - the context switch for AArch64 (AAPCS64).
 *
 * void weft__ctx_switch(weft__ctx *from, weft__ctx *to)
 *
 * Saves the callee-saved x19-x30, d8-d15 and FPCR in a 176-byte frame:
 *     [x19 x20][x21 x22][x23 x24][x25 x26][x27 x28][x29 x30]
 *     [d8 d9][d10 d11][d12 d13][d14 d15][fpcr pad]
 * weft__ctx_init builds the same frame with x19 = the entry function and
 * x30 = weft__ctx_trampoline.
 */
#if defined(__aarch64__)
        .text
        .globl  weft__ctx_switch
        .hidden weft__ctx_switch
        .type   weft__ctx_switch, %function
        .p2align 4
weft__ctx_switch:
        .cfi_startproc
        sub     sp, sp, #176
        .cfi_adjust_cfa_offset 176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        .cfi_adjust_cfa_offset -176
        ret
        .cfi_endproc
        .size   weft__ctx_switch, .-weft__ctx_switch

        .globl  weft__ctx_trampoline
        .hidden weft__ctx_trampoline
        .type   weft__ctx_trampoline, %function
        .p2align 4
weft__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0
        mov     x30, #0
        blr     x19
        brk     #0
        .cfi_endproc
        .size   weft__ctx_trampoline, .-weft__ctx_trampoline

/* int weft__call_fenced(weft_fn fn, void *arg): fn(arg) in a frame that
 * unwinders treat as the bottom of the stack (see switch_x86_64.S). */
        .globl  weft__call_fenced
        .hidden weft__call_fenced
        .type   weft__call_fenced, %function
        .p2align 4
weft__call_fenced:
        .cfi_startproc
        .cfi_undefined x30
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        mov     x16, x0
        mov     x0, x1
        blr     x16
        ldp     x29, x30, [sp], #16
        ret
        .cfi_endproc
        .size   weft__call_fenced, .-weft__call_fenced

/* void weft__call_on_stack(void (*fn)(void *), void *arg, void *top): fn(arg)
 * on another stack, returning on ours (see switch_x86_64.S). x29 holds our
 * stack pointer across the call. */
        .globl  weft__call_on_stack
        .hidden weft__call_on_stack
        .type   weft__call_on_stack, %function
        .p2align 4
weft__call_on_stack:
        .cfi_startproc
        stp     x29, x30, [sp, #-16]!
        .cfi_adjust_cfa_offset 16
        .cfi_rel_offset x29, 0
        .cfi_rel_offset x30, 8
        mov     x29, sp
        .cfi_def_cfa_register x29
        and     x2, x2, #~15
        mov     sp, x2
        mov     x16, x0
        mov     x0, x1
        blr     x16
        mov     sp, x29
        .cfi_def_cfa_register sp
        ldp     x29, x30, [sp], #16
        .cfi_adjust_cfa_offset -16
        .cfi_restore x29
        .cfi_restore x30
        ret
        .cfi_endproc
        .size   weft__call_on_stack, .-weft__call_on_stack
#endif
        .section .note.GNU-stack, "", %progbits
