// SPDX-License-Identifier: MIT
//
// tools_symbolize_lib.c -- a shared library between two frames of
// tests/tools_symbolize_prog.c, so a stack of that program crosses a
// module: main calls lib_call, which calls back into the program.
__attribute__((noinline)) void lib_call(void (*fn)(void *ret))
{
    fn(__builtin_return_address(0)); // line: call-fn
}
