"""Modbus/TCP (MBAP header + PDU) for the register and coil reads and writes of SCADA polling."""

from __future__ import annotations

import struct

READ_COILS = 1
READ_DISCRETE_INPUTS = 2
READ_HOLDING_REGISTERS = 3
READ_INPUT_REGISTERS = 4
WRITE_SINGLE_REGISTER = 6


def _mbap(transaction: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack("!HHHB", transaction & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def read_request(transaction: int, unit: int, function: int, address: int, count: int) -> bytes:
    return _mbap(transaction, unit, struct.pack("!BHH", function, address, count))


def read_response(transaction: int, unit: int, function: int, values: list[int]) -> bytes:
    if function in (READ_COILS, READ_DISCRETE_INPUTS):
        data = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v:
                data[i // 8] |= 1 << (i % 8)
        body = bytes(data)
    else:
        body = b"".join(struct.pack("!H", v & 0xFFFF) for v in values)
    return _mbap(transaction, unit, struct.pack("!BB", function, len(body)) + body)


def write_register(transaction: int, unit: int, address: int, value: int) -> bytes:
    """A write single register request; the server's answer echoes it."""
    return _mbap(transaction, unit, struct.pack("!BHH", WRITE_SINGLE_REGISTER, address, value & 0xFFFF))
