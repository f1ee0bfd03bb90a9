"""`satoyama simulate`: field nodes writing to a serial line, a pty, or standard output
(``--mqtt``: gateway/simulate_mqtt.py).

``--serial pty:PATH`` creates a pty pair and a symlink PATH to its slave, so a gateway
configured with ``sources.serial.port: PATH`` can read it; ``--serial /dev/ttyX`` writes
to an existing serial device (a USB adapter looped to the receiver's port, or one end of a
``socat`` pair); ``--stdout`` writes the bytes (binary frames, or text lines) to standard
output, for files that ``satoyama replay`` reads.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import IO, cast

from firmware_bridge.simulator import FaultPlan, Simulator, Tally, WireFormat
from gateway.sources.pty_link import PtyLink


def run_simulate(
    *,
    serial: str | None,
    stdout: bool,
    fmt: str,
    nodes: int,
    rate: float,
    count: int | None,
    duration: float | None,
    faults: bool,
    seed: int,
    site: str = "demo",
    err: IO[str] = sys.stderr,
) -> int:
    del site  # the native JSON of the simulator carries no site: the gateway's config does
    wire = "frame" if fmt == "frame-hex" else fmt
    sim = Simulator(nodes, seed, start_time_s=time.time(), interval_s=1.0 / rate,
                    fmt=cast(WireFormat, wire),
                    faults=FaultPlan.uniform(0.02) if faults else None)
    link: PtyLink | None = None
    close: Callable[[], None] = lambda: None  # noqa: E731
    if stdout:
        buffer = sys.stdout.buffer

        def write(data: bytes) -> None:
            buffer.write(data)

        close = buffer.flush
    elif serial and serial.startswith("pty:"):
        link = PtyLink(serial.removeprefix("pty:"))
        print(f"simulate: serial line at {link.path} (pty {link.pair and link.pair.slave_path})",
              file=err)

        def write(data: bytes) -> None:
            assert link is not None
            link.write(data)

        close = link.close
    elif serial:
        import serial as pyserial

        port = pyserial.Serial(serial, 115200, write_timeout=5)

        def write(data: bytes) -> None:
            port.write(data)

        close = port.close
    else:
        print("simulate: give --serial PATH, --serial pty:PATH or --stdout", file=err)
        return 2

    tally = Tally()
    end = None if duration is None else time.monotonic() + duration
    next_at = time.monotonic()
    realtime = not stdout or duration is not None
    try:
        rounds = 0
        while (count is None or rounds < count) and (end is None or time.monotonic() < end):
            now = time.time() if realtime else sim.start_time_s + rounds * sim.interval_s
            for emission in sim.tick(now):
                data = emission.data
                if fmt == "frame-hex":
                    data = data.hex().encode() + b"\n"
                write(data)
                tally.add(emission)
            rounds += 1
            if realtime:
                next_at += sim.interval_s
                time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `satoyama simulate --stdout | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        with contextlib.suppress(BrokenPipeError):
            close()
    print(f"simulate: {tally.messages} transmissions from {nodes} nodes", file=err)
    if tally.faults:
        print("simulate: faults injected: " + ", ".join(
            f"{k} {v}" for k, v in sorted(tally.faults.items())), file=err)
    return 0
