"""A spinning barrier for njit code running on several Python threads at once (nogil kernels).

    barrier(flags, me, n, step)      inline, in a kernel run by threads me = 0 .. n-1

flags is an int64 array of n slots, zero at the start; thread `me` is the only writer of
flags[me]. At the end of step s each thread stores s into its slot (a release store: every
write it made before is visible to a thread that reads the slot with an acquire load) and
waits until every slot holds at least s. A thread is at most one step ahead of the slowest,
so the flags never need resetting within a call. Plain loads would not do: the compiler may
hoist a load that no code in the loop writes out of the loop and spin forever, so the slots
are read and written as LLVM atomics (acquire / release; on x86 ordinary moves, no fence).

Why not prange: Numba's 'workqueue' layer (the one that stays out of torch's OpenMP pool)
took ~150 us a launch here, and a time loop needs one barrier a step. Why threads that spin:
the wait between steps is a few microseconds when both cores are ours (no `pause` hint:
Numba's LLVM has no inline-assembly parser). On a core shared with other jobs a spinning wait
wastes its time slice: the caller chooses the thread count (MINIRNN_NUM_THREADS).
"""
from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._common import ijit

_POSIX = sys.platform != "win32"
SPINS_BEFORE_YIELD = 2000        # ~ a few microseconds of polling, then sched_yield

def _slot_pointer(context, builder, aryty, ary, index):
    arr = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [index], wraparound=False)


@intrinsic
def load_acquire(typingctx, flags, index):
    """flags[index] (int64, 1-d C array), read with acquire ordering."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64 and flags.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(flags, index), codegen


@intrinsic
def store_release(typingctx, flags, index, value):
    """flags[index] = value (int64), written with release ordering."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64 and flags.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(flags, index, value), codegen


@intrinsic
def yield_cpu(typingctx):
    """sched_yield(): give the core to another runnable thread (POSIX; nothing elsewhere)."""
    def codegen(context, builder, sig, args):
        if _POSIX:
            fn = cgutils.get_or_insert_function(builder.module,
                                                ir.FunctionType(ir.IntType(32), []),
                                                "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@ijit
def barrier(flags, me, n, step):
    """Thread `me` of n has finished `step`: publish it, then wait for the others."""
    if n == 1:                                        # alone: nothing to wait for
        return
    store_release(flags, me, step)
    for k in range(n):
        spins = 0
        while load_acquire(flags, k) < step:
            spins += 1
            if spins >= SPINS_BEFORE_YIELD:           # the partner may wait for our core
                yield_cpu()
                spins = 0
