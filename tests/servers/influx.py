"""Real InfluxDB 1.x and VictoriaMetrics servers for tests: free loopback ports, own data dirs.

    db = InfluxDB1(tmp_path / "influx").start()
    db.url                         # http://127.0.0.1:<port>
    db.create_database("farm")
    db.query("SELECT count(*) FROM reading", "farm")   # InfluxQL over /query, parsed JSON
    db.stop(); db.start()          # same port, same data: an outage

    vm = VictoriaMetrics(tmp_path / "vm").start()
    vm.export('{__name__=~"reading_.*"}')   # every stored sample, after a forced flush

InfluxDB 1.x (Debian ``influxdb`` 1.6) serves ``/write`` and InfluxQL ``/query`` but not
``/api/v2/write``, which makes it the "server without the v2 API" as well. Its RPC service
(``bind-address``, default :8088) is moved to a free port too, so tests can run in parallel
and next to a real InfluxDB.

VictoriaMetrics implements ``/write`` and ``/api/v2/write`` independently of InfluxData's
code. It maps line protocol ``reading,site=s temperature_c=20.5`` to the metric
``reading_temperature_c{site="s"}``; samples become searchable after an in-memory buffer is
flushed, so :meth:`VictoriaMetrics.export` forces that flush first.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from servers.process import ServerProcess, free_port

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
VICTORIA_METRICS = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0
         ) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


class InfluxDB1(ServerProcess):
    """InfluxDB 1.x (``influxd``) with a generated config: no auth, no reporting."""

    name = "influxd"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.rpc_port = free_port()
        self.conf_path = self.dir / "influxdb.conf"
        d = self.dir
        self.conf_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"
  logging-enabled = false

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""
        )

    def _command(self) -> list[str]:
        return [INFLUXD, "run", "-config", str(self.conf_path)]

    def _ready(self) -> bool:
        status, _ = http("GET", f"{self.url}/ping", timeout=1.0)
        return status == 204

    def start(self, timeout: float = 20.0) -> InfluxDB1:
        super().start(timeout)
        return self

    def query(self, q: str, db: str | None = None, *, epoch: str = "ns") -> dict[str, Any]:
        """Run InfluxQL over ``/query``; raise on an HTTP or statement error."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        status, body = http("POST", f"{self.url}/query?" + urllib.parse.urlencode(params))
        result: dict[str, Any] = json.loads(body)
        if status != 200 or "error" in result:
            raise RuntimeError(f"InfluxQL {q!r}: HTTP {status}: {body[:500]!r}")
        for statement in result.get("results", []):
            if "error" in statement:
                raise RuntimeError(f"InfluxQL {q!r}: {statement['error']}")
        return result

    def series(self, q: str, db: str) -> list[dict[str, Any]]:
        """The series of the first statement's result (empty list for no data)."""
        results = self.query(q, db)["results"]
        return list(results[0].get("series", [])) if results else []

    def count(self, q: str, db: str) -> int:
        """The number a ``SELECT count(...)`` returns; 0 while there is no data yet."""
        try:
            return int(self.series(q, db)[0]["values"][0][1])
        except (KeyError, IndexError):
            return 0

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def write(self, db: str, body: bytes) -> tuple[int, bytes]:
        return http("POST", f"{self.url}/write?db={db}&precision=ns", body)


class VictoriaMetrics(ServerProcess):
    """Single-node VictoriaMetrics; retention long enough for any test timestamp."""

    name = "victoria-metrics"

    def _command(self) -> list[str]:
        return [
            VICTORIA_METRICS,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.dir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def _ready(self) -> bool:
        status, _ = http("GET", f"{self.url}/health", timeout=1.0)
        return status == 200

    def start(self, timeout: float = 20.0) -> VictoriaMetrics:
        super().start(timeout)
        return self

    def flush(self) -> None:
        """Make everything ingested so far searchable (``/internal/force_flush``)."""
        status, body = http("GET", f"{self.url}/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"force_flush: HTTP {status}: {body[:300]!r}")

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching ``match`` with all its samples (``/api/v1/export``)."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = http("GET", f"{self.url}/api/v1/export?{query}")
        if status != 200:
            raise RuntimeError(f"export {match}: HTTP {status}: {body[:300]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]
