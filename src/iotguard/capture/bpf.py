"""BPF capture filters (tcpdump syntax): compiled by libpcap, run by the kernel or by a jitted interpreter.

``compile_filter("tcp port 1883", linktype)`` returns the classic-BPF program libpcap generates for that
link type (libpcap is loaded with ctypes; no interface or tcpdump process is needed). Live capture attaches
the program to the socket (the kernel filters); capture files run it with :func:`filter_mask`, a small
numba implementation of the classic BPF machine with libpcap's rules: a load outside the captured bytes
rejects the packet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np
from numba import njit

from iotguard.capture.batch import SUPPORTED_LINKTYPES, PacketBatch
from iotguard.core.errors import CaptureError

_NETMASK_UNKNOWN = 0xFFFFFFFF


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


@functools.cache
def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    for candidate in (name, "libpcap.so.1", "libpcap.so.0.8", "libpcap.so"):
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    raise CaptureError(
        "BPF filters need libpcap, which is not installed", expected="the libpcap0.8 Debian package"
    )


@functools.lru_cache(maxsize=64)
def compile_filter(expression: str, linktype: int, snaplen: int = 262144) -> np.ndarray:
    """Compile a tcpdump-syntax filter for a link type; returns an (n, 4) int64 array (code, jt, jf, k)."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(int(linktype), int(snaplen))
    if not handle:
        raise CaptureError(f"libpcap cannot open a handle for link type {linktype}")
    program = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1, _NETMASK_UNKNOWN) != 0:
            message = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
            raise CaptureError(f"bad capture filter {expression!r}: {message}", where="--filter")
        try:
            insns = [
                (
                    program.bf_insns[i].code,
                    program.bf_insns[i].jt,
                    program.bf_insns[i].jf,
                    program.bf_insns[i].k,
                )
                for i in range(program.bf_len)
            ]
        finally:
            lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)
    prog = np.array(insns, dtype=np.int64).reshape(-1, 4)
    prog.setflags(write=False)
    return prog


@njit(cache=True)
def _run(prog, buf, p, cap, wirelen, mem):
    a = np.int64(0)
    x = np.int64(0)
    pc = 0
    n = prog.shape[0]
    for _ in range(n + 1):  # classic BPF only jumps forward: at most n steps
        if pc >= n:
            return 0
        code = prog[pc, 0]
        k = prog[pc, 3]
        cls = code & 0x07
        if cls == 0x00 or cls == 0x01:  # LD / LDX
            mode = code & 0xE0
            size = code & 0x18
            if cls == 0x01:
                if mode == 0x00:
                    x = k
                elif mode == 0x60:
                    x = mem[k & 15]
                elif mode == 0x80:
                    x = wirelen
                elif mode == 0xA0:  # MSH: x = 4 * (byte[k] & 0xf)
                    if k >= cap:
                        return 0
                    x = np.int64(buf[p + k] & 0x0F) << 2
                else:
                    return 0
            else:
                if mode == 0x00:
                    a = k
                elif mode == 0x60:
                    a = mem[k & 15]
                elif mode == 0x80:
                    a = wirelen
                elif mode == 0x20 or mode == 0x40:
                    off = k if mode == 0x20 else (x + k) & 0xFFFFFFFF
                    width = 4 if size == 0x00 else (2 if size == 0x08 else 1)
                    if off + width > cap:
                        return 0
                    q = p + off
                    if width == 4:
                        a = (
                            (np.int64(buf[q]) << 24)
                            | (np.int64(buf[q + 1]) << 16)
                            | (np.int64(buf[q + 2]) << 8)
                            | np.int64(buf[q + 3])
                        )
                    elif width == 2:
                        a = (np.int64(buf[q]) << 8) | np.int64(buf[q + 1])
                    else:
                        a = np.int64(buf[q])
                else:
                    return 0
        elif cls == 0x02:
            mem[k & 15] = a
        elif cls == 0x03:
            mem[k & 15] = x
        elif cls == 0x04:  # ALU
            op = code & 0xF0
            v = x if code & 0x08 else k
            if op == 0x00:
                a = a + v
            elif op == 0x10:
                a = a - v
            elif op == 0x20:
                a = a * v
            elif op == 0x30:
                if v == 0:
                    return 0
                a = a // v
            elif op == 0x90:
                if v == 0:
                    return 0
                a = a % v
            elif op == 0x40:
                a = a | v
            elif op == 0x50:
                a = a & v
            elif op == 0xA0:
                a = a ^ v
            elif op == 0x60:
                a = a << (v & 63) if v < 32 else 0
            elif op == 0x70:
                a = a >> v if v < 32 else 0
            elif op == 0x80:
                a = -a
            else:
                return 0
            a &= 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            if op == 0x00:
                pc += 1 + k
                continue
            v = x if code & 0x08 else k
            if op == 0x10:
                cond = a == v
            elif op == 0x20:
                cond = a > v
            elif op == 0x30:
                cond = a >= v
            elif op == 0x40:
                cond = (a & v) != 0
            else:
                return 0
            pc += 1 + (prog[pc, 1] if cond else prog[pc, 2])
            continue
        elif cls == 0x06:  # RET
            return a if (code & 0x18) == 0x10 else k
        else:  # MISC
            if (code & 0xF8) == 0x00:
                x = a
            else:
                a = x
        pc += 1
    return 0


@njit(cache=True)
def _filter(prog, data, offset, caplen, wirelen, mask):
    mem = np.zeros(16, np.int64)
    for i in range(offset.shape[0]):
        mask[i] = _run(prog, data, offset[i], caplen[i], wirelen[i], mem) != 0


def filter_mask(expression: str, batch: PacketBatch) -> np.ndarray:
    """Which packets of ``batch`` the filter accepts (each packet judged under its own link type)."""
    mask = np.zeros(len(batch), dtype=np.bool_)
    if not len(batch):
        return mask
    for linktype in np.unique(batch.linktype):
        if int(linktype) not in SUPPORTED_LINKTYPES:
            continue  # packets the flow parser cannot read are not accepted either
        prog = compile_filter(expression, int(linktype))
        pick = np.flatnonzero(batch.linktype == linktype)
        part = np.zeros(pick.shape[0], dtype=np.bool_)
        _filter(prog, batch.data, batch.offset[pick], batch.caplen[pick], batch.wirelen[pick], part)
        mask[pick] = part
    return mask
