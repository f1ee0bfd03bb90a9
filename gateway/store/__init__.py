"""The embedded store: readings, device health, quarantine and counters in one SQLite file.

It is both the default storage and the durable outbox that other sinks drain.
"""

from gateway.store.sqlite import BatchResult, Store, StoreFull

__all__ = ["BatchResult", "Store", "StoreFull"]
