"""How fast can the serial source take frames off a pty? Chunked reads vs readline().

Pushes N 30-byte newline-terminated frames through a PtyPair (writer thread) and reads
them with (1) SerialSource, chunked reads into a bounded queue drained by the main thread,
and (2) a plain pyserial ``readline()`` loop, for reference. Prints frames/s and CPU
seconds (whole process, and the reader thread alone).

    .venv/bin/python benchmarks/serial_read.py [--frames N] [--readline-frames N]
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serial

from gateway.sources.pty_link import PtyPair
from gateway.sources.serial import RawChunk, SerialSource

FRAME_LEN = 30


def frames(n: int) -> bytes:
    out = bytearray()
    for seq in range(n):
        line = f"n{seq % 100:02d} seq={seq:010d} t=24.1".encode()
        out += line.ljust(FRAME_LEN - 1, b" ") + b"\n"
    return bytes(out)


def start_writer(pair: PtyPair, data: bytes, batch: int) -> threading.Thread:
    def write() -> None:
        for at in range(0, len(data), batch):
            pair.write(data[at : at + batch])

    thread = threading.Thread(target=write, name="writer", daemon=True)
    thread.start()
    return thread


# The same write loop in a child process, so that the writer does not share our GIL:
# with one write() per frame the in-process writer, not the reader, sets the pace.
CHILD_WRITER = """
import os, select, sys
fd, batch = map(int, sys.argv[1:])
data = sys.stdin.buffer.read()
for at in range(0, len(data), batch):
    view = memoryview(data)[at : at + batch]
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])
"""


def start_child_writer(pair: PtyPair, data: bytes, batch: int) -> subprocess.Popen[bytes]:
    args = [str(pair.master_fd), str(batch)]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, *args],
        stdin=subprocess.PIPE,
        pass_fds=[pair.master_fd],
    )
    assert child.stdin is not None
    child.stdin.write(data)
    child.stdin.close()
    return child


def thread_cpu_s(name: str) -> float:
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return float("nan")


def report(label: str, n: int, wall: float, cpu: float, reader_cpu: float, extra: str) -> None:
    print(
        f"{label:<48} {n:>9} frames  {n / wall:>11,.0f} frames/s  {n * FRAME_LEN / wall / 1e6:6.2f}"
        f" MB/s  wall {wall:6.2f} s  cpu {cpu:5.2f} s (reader thread {reader_cpu:5.2f} s)  {extra}"
    )


def bench_source(n: int, batch: int, writer_process: bool = False) -> None:
    data = frames(n)
    q: queue.Queue[Any] = queue.Queue(maxsize=1024)
    with PtyPair() as pair:
        source = SerialSource("bench", pair.slave_path, 115200, q)
        source.start()
        while not source.connected:
            time.sleep(0.01)
        q.get()  # the "connected" event
        if writer_process:  # started (and fed its frames) before the clock starts
            child = start_child_writer(pair, data, batch)
        cpu0, t0 = time.process_time(), time.perf_counter()
        if not writer_process:
            writer = start_writer(pair, data, batch)
        received = chunks = 0
        while received < len(data):
            item = q.get(timeout=30)
            if isinstance(item, RawChunk):
                received += len(item.data)
                chunks += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        reader_cpu = thread_cpu_s("serial-source-bench")
        if writer_process:
            child.wait()
        else:
            writer.join()
        source.stop()
    where = "writer process" if writer_process else "writer thread"
    report(
        f"SerialSource, {batch} B writes, {where}",
        n,
        wall,
        cpu,
        reader_cpu,
        f"{chunks} chunks, {received / chunks:.0f} B/chunk",
    )


def bench_readline(n: int, batch: int) -> None:
    data = frames(n)
    result: dict[str, float] = {}
    with PtyPair() as pair:
        ser = serial.Serial(pair.slave_path, 115200, timeout=0.1, exclusive=True)

        def read() -> None:
            for _ in range(n):
                ser.readline()
            result["cpu"] = time.thread_time()

        cpu0, t0 = time.process_time(), time.perf_counter()
        reader = threading.Thread(target=read, name="readline-reader")
        reader.start()
        writer = start_writer(pair, data, batch)
        reader.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        writer.join()
        ser.close()
    report(f"readline(), {batch} B writes", n, wall, cpu, result["cpu"], "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--readline-frames", type=int, default=20_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, pyserial {serial.__version__}")
    bench_source(args.frames, batch=FRAME_LEN * 136)  # ~4 KiB writes: a busy receiver
    bench_source(args.frames // 10, batch=FRAME_LEN)  # one write per frame
    bench_source(args.frames // 5, batch=FRAME_LEN, writer_process=True)
    bench_readline(args.readline_frames, batch=FRAME_LEN * 136)


if __name__ == "__main__":
    main()
