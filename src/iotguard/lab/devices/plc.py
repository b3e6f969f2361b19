"""Modbus/TCP PLCs polled by a SCADA host (the ``site`` scenario's building automation).

Each PLC listens on TCP 502. The SCADA host polls it every 0.5 to 5 seconds, reading one to three register or
coil blocks per poll (function codes 1, 3 and 4), and now and then writes a set point (function 6). Most
pollers keep one connection open for hours; some open a connection for every poll and close it again.
"""

from __future__ import annotations

from iotguard.lab.network import Host
from iotguard.lab.proto import modbus
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

FUNCTIONS = (modbus.READ_HOLDING_REGISTERS, modbus.READ_INPUT_REGISTERS, modbus.READ_COILS)


def simulate(sim: Sim, scada: Host, plc: Host, start: float, end: float) -> None:
    rng = sim.rng("plc", plc.name)
    interval = rng.choice((0.5, 1.0, 1.0, 2.0, 5.0))
    unit = rng.choice((0, 1, 1, 255))
    blocks = [
        (FUNCTIONS[rng.randrange(len(FUNCTIONS))], rng.randrange(0, 4000, 10), rng.randrange(1, 40))
        for _ in range(rng.randrange(1, 4))
    ]
    values = {
        b: [rng.randrange(0, 2 if b[0] == modbus.READ_COILS else 4000) for _ in range(b[2])] for b in blocks
    }
    persistent = rng.random() < 0.7
    transaction = rng.randrange(0, 65536)
    t = sim.arp(start + rng.uniform(0.5, 5.0), scada, plc)
    conn: TcpConn | None = None
    at = t
    while t < end:
        if conn is None:
            conn = TcpConn(sim, scada, plc, 502, loss=0.002, rng=rng)
            at = conn.connect(max(t, at + 1e-3))
        else:
            at = max(t, at + 1e-3)  # a slow answer (a retransmission) may still be in flight
        for block in blocks:
            function, address, count = block
            transaction = (transaction + 1) & 0xFFFF
            row = values[block]
            if function != modbus.READ_COILS:
                k = rng.randrange(count)
                row[k] = max(0, min(65535, row[k] + rng.randrange(-5, 6)))
            at = conn.request(
                at + rng.uniform(1e-4, 2e-3),
                modbus.read_request(transaction, unit, function, address, count),
                modbus.read_response(transaction, unit, function, row),
                think=rng.uniform(5e-4, 8e-3),
            )
        if rng.random() < 0.01:  # an operator changes a set point
            transaction = (transaction + 1) & 0xFFFF
            write = modbus.write_register(transaction, unit, rng.randrange(0, 100), rng.randrange(0, 1000))
            at = conn.request(at + rng.uniform(1e-4, 2e-3), write, write, think=rng.uniform(1e-3, 1e-2))
        if not persistent:
            conn.close(at + rng.uniform(1e-4, 2e-3), from_client=True)
            conn = None
        t += interval * (1 + rng.uniform(-0.01, 0.01))
    if conn is not None:
        conn.finish()
