"""A real Mosquitto broker for tests: free loopback port, its own data dir, the shipped limits.

    broker = Mosquitto(tmp_path / "broker").start()
    broker.url            # mqtt://127.0.0.1:<port>  (mqtts:// with tls=)
    broker.restart()      # SIGTERM (persistence saved), start again on the same port
    broker.stop()

The config is written here and includes a copy of ``deploy/mosquitto/conf.d/limits.conf``,
so tests run against the queue and in-flight limits that ship. ``persistence true`` with
``user root``: run as root, mosquitto would otherwise drop to user ``mosquitto`` and fail
to save its database in a root-owned temporary directory ("Error saving in-memory
database"); :meth:`stop` checks the log for that.

:func:`make_certs` writes a throwaway CA, a server certificate for 127.0.0.1/localhost, a
client certificate, and a second, unrelated CA (for wrong-CA tests) with the openssl CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servers.process import ServerProcess, listening

REPO = Path(__file__).resolve().parents[2]
LIMITS_CONF = REPO / "deploy" / "mosquitto" / "conf.d" / "limits.conf"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # an unrelated CA: verifying the broker with it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(directory: Path) -> Certs:
    """A test PKI in ``directory`` (EC P-256 keys: fast to make)."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem",
                 "-days", "2", "-subj", f"/CN=Satoyama test {name}", cwd=d)
    leaf_ext = (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    (d / "server.ext").write_text(
        leaf_ext + "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    (d / "client.ext").write_text(leaf_ext + "extendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "localhost"), ("client", "satoyama-test-gateway")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=d)
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem",
                 d / "client.key", d / "other-ca.pem")


class Mosquitto(ServerProcess):
    """One mosquitto process; ``stop()``/``start()`` keep the port and the persistence file."""

    name = "mosquitto"

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        certs: Certs | None = None,
        require_client_cert: bool = False,
        extra_config: str = "",
    ) -> None:
        super().__init__(directory)
        self.users = users
        self.certs = certs
        self.conf_path = self.dir / "mosquitto.conf"
        self._write_config(require_client_cert, extra_config)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.certs else 'mqtt'}://127.0.0.1:{self.port}"

    def _write_config(self, require_client_cert: bool, extra: str) -> None:
        conf_d = self.dir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        shutil.copy(LIMITS_CONF, conf_d / "limits.conf")
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            "user root",
            "persistence true",
            f"persistence_location {data}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            f"include_dir {conf_d}",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.users is not None:
            pwfile = self.dir / "passwd"
            pwfile.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password],
                               check=True, capture_output=True)
            os.chmod(pwfile, 0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if self.certs is not None:
            lines += [
                f"cafile {self.certs.ca}",
                f"certfile {self.certs.server_cert}",
                f"keyfile {self.certs.server_key}",
            ]
            if require_client_cert:
                lines.append("require_certificate true")
        self.conf_path.write_text("\n".join(lines) + "\n" + extra)

    # ------------------------------------------------------------------ lifecycle

    def _command(self) -> list[str]:
        return [MOSQUITTO, "-c", str(self.conf_path)]

    def _ready(self) -> bool:
        return listening(self.port)

    def start(self, timeout: float = 10.0) -> Mosquitto:
        super().start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        super().stop(timeout)
        assert "Error saving in-memory database" not in self.log(), self.log()

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def refused_not_authorised(self) -> int:
        """How many connections the broker refused as not authorised (bad credentials)."""
        return self.log().count("disconnected, not authorised")
