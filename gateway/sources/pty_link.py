"""A real serial line without hardware: a pseudo-terminal pair, and a pluggable symlink to it.

Used by ``satoyama demo``, ``satoyama simulate --serial PATH`` and the tests: the simulated
radio receiver writes frames to the pty *master*; the gateway opens the *slave* path with
pyserial exactly as it would open ``/dev/ttyUSB0``.

Linux pty behaviour this relies on (kernel 6.x; checked by tests/gateway/test_serial_source.py):

- Bytes written to the master reach the slave's input after a short asynchronous hop, so a
  reader may see ``in_waiting == 0`` for a moment right after a write.
- The kernel holds only a small amount of unread data (the n_tty read buffer of 4 KiB plus
  the pty's transfer buffers; about 18 KiB in all on Linux 6.x) and then the master becomes
  unwritable: a blocking write blocks, ours (non-blocking) waits in ``select``. That is the
  natural backpressure a slow reader exerts on the simulator.
- When the master is closed, the slave reads fail with EIO (pyserial raises
  ``SerialException``) and bytes not yet read are gone, like a USB adapter being pulled.
- pyserial flushes the input buffer when it opens the port, so bytes written before the
  reader opened the slave are discarded.

:class:`PtyLink` publishes a stable path (a symlink, like ``/dev/serial/by-id/...``) to the
current pair: :meth:`PtyLink.unplug` removes the symlink and closes the master, and
:meth:`PtyLink.plug` makes a new pair and points the symlink at it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
import tty
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PtyLink", "PtyPair"]


class _ClosedOnExit:
    """``with`` support: close() on leaving the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PtyPair(_ClosedOnExit):
    """A raw-mode pseudo-terminal pair; write to the master, open :attr:`slave_path` to read.

    The pair keeps its own slave descriptor open for its whole life, so the slave path and
    its raw settings stay valid while readers come and go.
    """

    def __init__(self) -> None:
        master_fd, slave_fd = os.openpty()
        try:
            # Raw on both ends: no echo back to the writer, no CR/LF translation, no
            # line buffering, no signal characters: the bytes arrive as written.
            tty.setraw(master_fd)
            tty.setraw(slave_fd)
            os.set_blocking(master_fd, False)
            self.slave_path: str = os.ttyname(slave_fd)
        except BaseException:
            os.close(master_fd)
            os.close(slave_fd)
            raise
        self.master_fd: int = master_fd
        self._slave_fd: int = slave_fd
        self.closed = False

    def write(self, data: bytes, timeout: float | None = None) -> int:
        """Write all of ``data`` to the master, waiting while the pty is full.

        Returns the number of bytes written: ``len(data)`` unless ``timeout`` seconds went
        by with the reader not taking bytes, in which case the rest was not written (a
        simulator may treat that as a UART overrun). ``timeout=None`` waits for ever.
        """
        if self.closed:
            raise ValueError("write to a closed PtyPair")
        view = memoryview(data)
        written = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while written < len(view):
            try:
                written += os.write(self.master_fd, view[written:])
                continue
            except BlockingIOError:
                pass
            except InterruptedError:
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            select.select([], [self.master_fd], [], left)
        return written

    def fileno(self) -> int:
        return self.master_fd

    def close(self) -> None:
        """Close both ends; a reader of the slave then gets EIO. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"master_fd={self.master_fd}"
        return f"PtyPair({self.slave_path!r}, {state})"


class PtyLink(_ClosedOnExit):
    """A stable symlink ``path`` to the slave of the current :class:`PtyPair`, pluggable.

    Refuses to replace anything at ``path`` that is not a symlink, so pointing it at a real
    device path by mistake cannot clobber it. Plugged on construction unless
    ``plugged=False``; :meth:`close` (or leaving the ``with`` block) unplugs.
    """

    def __init__(self, path: str | os.PathLike[str], *, plugged: bool = True) -> None:
        self.path = Path(path)
        self.pair: PtyPair | None = None
        if plugged:
            self.plug()

    @property
    def plugged(self) -> bool:
        return self.pair is not None

    def plug(self) -> PtyPair:
        """Create a new pty pair and point the symlink at its slave (atomically)."""
        if self.pair is not None:
            raise RuntimeError(f"{self.path} is already plugged")
        if self.path.exists() and not self.path.is_symlink():
            raise FileExistsError(
                errno.EEXIST, "exists and is not a symlink; will not replace", str(self.path)
            )
        pair = PtyPair()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(pair.slave_path)
            os.replace(tmp, self.path)
        except BaseException:
            pair.close()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self.pair = pair
        return pair

    def unplug(self) -> None:
        """Remove the symlink, then close the pair: readers get EIO, reopening ENOENT."""
        if self.pair is None:
            return
        # Symlink first, so a reader retrying in between finds nothing rather than a
        # dying pty.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.pair.close()
        self.pair = None

    def write(self, data: bytes, timeout: float | None = None) -> int:
        """:meth:`PtyPair.write` on the current pair; raises ``OSError(ENODEV)`` if unplugged."""
        if self.pair is None:
            raise OSError(errno.ENODEV, "link is unplugged", str(self.path))
        return self.pair.write(data, timeout)

    def close(self) -> None:
        self.unplug()

    def __repr__(self) -> str:
        target = self.pair.slave_path if self.pair else "unplugged"
        return f"PtyLink({str(self.path)!r} -> {target})"
