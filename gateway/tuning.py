"""Process settings for ``satoyama run``, a long-lived process of a few threads.

- :func:`share_malloc_arenas`: glibc gives every thread that allocates while another one
  holds the lock its own malloc arena (up to 8 per core), and memory freed in one arena
  is reused only there. The gateway's threads (the MQTT network thread with its 64 KiB
  reads, the pipeline with SQLite's allocations, the InfluxDB sink with its request
  bodies) each kept their own free memory: two arenas in all lowered the peak RSS of a
  50,000-message burst by 2-4 MB (54-55 against 56-58 MB, benchmarks/mqtt_influx.py),
  the well-known ``MALLOC_ARENA_MAX=2`` of long-running Python and Ruby services.
- :func:`settle_after_startup`: what start-up built stays out of the cyclic garbage
  collector, whose young generation is collected less often.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
from typing import Final

log = logging.getLogger(__name__)

MALLOC_ARENAS: Final = 2
_M_ARENA_MAX: Final = -8  # glibc malloc.h


def share_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``, before the threads start; whether it was
    done. Not where the C library is not glibc (``mallopt`` is glibc's), nor when the
    environment sets ``MALLOC_ARENA_MAX`` (glibc has then read it: it is the operator's)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl (Alpine) and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return done


def settle_after_startup() -> None:
    """Call once start-up has built everything that lives as long as the process."""
    # What start-up built (modules, the config model, pydantic's schemas: ~40,000 objects)
    # lives as long as the process: keep it out of the cyclic collector's full passes,
    # which otherwise scanned it again and again (0.25 s against 0.03 s of full
    # collections over a 2,000/s phase and a 50,000-message burst).
    gc.collect()
    gc.freeze()
    # Every uplink allocates a few dozen containers that die by reference counting, none
    # in a cycle: at the default threshold (700) the young generation was collected every
    # ~20 uplinks, to find nothing. 20,000: -3 % instructions per message end to end
    # (benchmarks/mqtt_instructions.py), peak RSS unchanged (docs/mqtt.md, Performance).
    gc.set_threshold(20_000, 20, 20)
