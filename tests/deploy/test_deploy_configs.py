"""The configuration files the production stack mounts, checked for real where possible:
the gateway's config through ``check_config`` with the environment Compose would give it,
mosquitto.conf (and the password entrypoint) with the real Debian mosquitto, and the
Grafana provisioning and InfluxDB init script against what docker-compose.yml sets.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from compose_support import REPO, environment, interpolate_text
from servers.process import free_port

from gateway.config import check_config, load_settings

GATEWAY_CONFIG = REPO / "deploy" / "gateway" / "satoyama.yaml"
MOSQUITTO_DIR = REPO / "deploy" / "mosquitto"
MOSQUITTO_CONF = MOSQUITTO_DIR / "mosquitto.conf"
INIT_PASSWORDS = MOSQUITTO_DIR / "init-passwords.sh"
DBRP_SCRIPT = REPO / "deploy" / "influxdb" / "init" / "10-dbrp.sh"
PROVISIONING = REPO / "dashboards" / "provisioning"
MOSQUITTO = Path("/usr/sbin/mosquitto")


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of a service's volumes."""
    return {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])}


def _directives(conf: Path) -> list[tuple[str, str]]:
    result = []
    for line in conf.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            result.append((key, value.strip()))
    return result


# --------------------------------------------------------------------------- gateway


@pytest.fixture()
def gateway_env(compose: dict[str, Any]) -> dict[str, str]:
    """The environment the gateway container gets from a .env copied from .env.example."""
    return environment(compose["services"]["gateway"])


def test_gateway_config_passes_check_config_with_the_compose_environment(
    gateway_env: dict[str, str],
) -> None:
    assert check_config(GATEWAY_CONFIG, env=gateway_env) == []


def test_gateway_config_keeps_no_secrets(gateway_env: dict[str, str]) -> None:
    # Without the environment, the InfluxDB token is missing: it is not in the file.
    without_token = {k: v for k, v in gateway_env.items() if "TOKEN" not in k}
    problems = check_config(GATEWAY_CONFIG, env=without_token)
    assert any("sinks.influxdb.token" in str(p) for p in problems), problems
    text = GATEWAY_CONFIG.read_text()
    for line in text.splitlines():
        stripped = line.strip()
        assert not stripped.startswith(("password:", "token:")), stripped


def test_gateway_config_points_at_the_compose_services(
    compose: dict[str, Any], gateway_env: dict[str, str], env_example: dict[str, str]
) -> None:
    settings = load_settings(GATEWAY_CONFIG, env=gateway_env)
    services = compose["services"]
    mqtt, influx = settings.sources.mqtt, settings.sinks.influxdb
    assert mqtt is not None and influx is not None

    assert (mqtt.host, mqtt.port) == ("mosquitto", 1883)
    mosquitto_env = environment(services["mosquitto"])
    assert mqtt.username == mosquitto_env["MQTT_GATEWAY_USER"]
    assert mqtt.password is not None
    assert mqtt.password.get_secret_value() == mosquitto_env["MQTT_GATEWAY_PASSWORD"]

    assert (urlsplit(influx.url).hostname, urlsplit(influx.url).port) == ("influxdb", 8086)
    influx_env = environment(services["influxdb"])
    assert influx.api == "v2"
    assert influx.org == influx_env["DOCKER_INFLUXDB_INIT_ORG"]
    assert influx.bucket == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert influx.token is not None
    assert influx.token.get_secret_value() == influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]

    assert settings.site == env_example["SATOYAMA_SITE"]
    # The store is on the gateway's named volume, not in the container's writable layer.
    gateway_mounts = _mounts(services["gateway"])
    assert str(settings.data_dir) == "/data"
    assert gateway_mounts["/data"] in compose["volumes"]
    assert settings.sqlite_path.is_relative_to("/data")


# --------------------------------------------------------------------------- mosquitto


def test_mosquitto_conf_requires_login_and_includes_the_limits(compose: dict[str, Any]) -> None:
    directives = _directives(MOSQUITTO_CONF)
    values = dict(directives)
    assert values["allow_anonymous"] == "false"
    assert ("include_dir", "/mosquitto/config/conf.d") in directives
    assert (MOSQUITTO_DIR / "conf.d" / "limits.conf").is_file()
    assert values["persistence"] == "true"

    mounts = _mounts(compose["services"]["mosquitto"])
    # conf.d is the repository's deploy/mosquitto/conf.d, the file the tests' brokers use.
    assert (REPO / mounts["/mosquitto/config"]).resolve() == MOSQUITTO_DIR
    # Password file and persistence on the named volume.
    assert mounts["/mosquitto/data"] in compose["volumes"]
    assert values["password_file"].startswith("/mosquitto/data/")
    assert values["persistence_location"].startswith("/mosquitto/data")

    listeners = {int(v.split()[0]) for k, v in directives if k == "listener"}
    assert listeners == {1883}
    published = {int(str(p).rsplit(":", 1)[-1]) for p in compose["services"]["mosquitto"]["ports"]}
    assert published <= listeners, "a published port without a listener"


def test_mosquitto_entrypoint_is_the_mounted_script(compose: dict[str, Any]) -> None:
    service = compose["services"]["mosquitto"]
    assert service["entrypoint"] == ["/mosquitto/config/init-passwords.sh"]
    assert os.access(INIT_PASSWORDS, os.X_OK), "git must keep init-passwords.sh executable"
    assert service["command"] == ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]


@pytest.mark.parametrize("script", [INIT_PASSWORDS, DBRP_SCRIPT], ids=lambda p: p.name)
def test_init_scripts_parse(script: Path) -> None:
    # init-passwords.sh runs under busybox ash in eclipse-mosquitto: keep it POSIX (dash -n).
    shell = "bash" if script.read_text().startswith("#!/bin/bash") else "dash"
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    assert os.access(script, os.X_OK), f"{script.name} must be executable"
    subprocess.run([shell, "-n", str(script)], check=True)


def _mqtt_pub(port: int, *auth: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
         "-t", "satoyama/test-farm/n1/up", "-m", "{}", *auth],
        capture_output=True, text=True, timeout=10,
    )


@pytest.fixture()
def broker_env(env_example: dict[str, str]) -> dict[str, str]:
    keys = ("MQTT_GATEWAY_USER", "MQTT_GATEWAY_PASSWORD", "MQTT_NODES_USER", "MQTT_NODES_PASSWORD")
    return {k: env_example[k] for k in keys}


@pytest.fixture()
def broker(tmp_path: Path, broker_env: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """The production mosquitto.conf on the real Debian mosquitto, its paths moved to
    tmp_path and its listener to a free port on 127.0.0.1; the password file written by
    the stack's own entrypoint script. Yields (port, password file)."""
    if not (MOSQUITTO.exists() and shutil.which("mosquitto_pub") and shutil.which("dash")):
        pytest.skip("needs mosquitto, mosquitto-clients (tests/debian-packages.txt) and dash")
    data = tmp_path / "data"
    data.mkdir()
    passwd = data / "passwd"
    env = {"PATH": os.environ["PATH"], "MOSQUITTO_PASSWORD_FILE": str(passwd), **broker_env}
    subprocess.run(["dash", str(INIT_PASSWORDS), "true"], env=env, check=True,
                   capture_output=True)

    port = free_port()
    text = MOSQUITTO_CONF.read_text()
    text = text.replace("/mosquitto/data/", f"{data}/")
    text = text.replace("/mosquitto/config/conf.d", str(MOSQUITTO_DIR / "conf.d"))
    text = text.replace("\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n")
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not [line for line in settings if " /mosquitto/" in line], "a path was not moved"
    assert f"listener {port} 127.0.0.1" in settings
    if os.geteuid() == 0:
        # As root mosquitto would switch to its own user, who cannot enter pytest's 0700
        # tmp_path; the container has no such problem (init-passwords.sh chowns the volume).
        text += "\nuser root\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)

    log = (tmp_path / "mosquitto.log").open("w")
    proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not listen"
                time.sleep(0.05)
        yield port, passwd
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    limits = (tmp_path / "mosquitto.log").read_text()
    assert "limits.conf" in limits, "conf.d/limits.conf was not loaded"


def test_real_mosquitto_starts_with_the_production_conf_and_refuses_anonymous(
    broker: tuple[int, Path], broker_env: dict[str, str]
) -> None:
    port, _ = broker
    anonymous = _mqtt_pub(port)
    assert anonymous.returncode != 0
    assert "not authorised" in anonymous.stderr.lower()

    wrong = _mqtt_pub(port, "-u", broker_env["MQTT_GATEWAY_USER"], "-P", "wrong-password")
    assert wrong.returncode != 0

    for who in ("GATEWAY", "NODES"):
        ok = _mqtt_pub(port, "-u", broker_env[f"MQTT_{who}_USER"],
                       "-P", broker_env[f"MQTT_{who}_PASSWORD"])
        assert ok.returncode == 0, ok.stderr


def test_mosquitto_healthcheck_command_succeeds_against_the_real_broker(
    broker: tuple[int, Path], broker_env: dict[str, str], compose_raw: dict[str, Any]
) -> None:
    # The compose healthcheck, with Compose's $$ escaping undone and the port moved.
    port, _ = broker
    test = compose_raw["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = interpolate_text(test[1], {}).replace("-p 1883", f"-p {port}")
    env = {"PATH": os.environ["PATH"], **broker_env}
    result = subprocess.run(["dash", "-c", command], env=env, capture_output=True, text=True,
                            timeout=15)
    assert result.returncode == 0, result.stderr


def test_password_entrypoint_rotates_from_env_and_keeps_hand_added_users(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    if not (shutil.which("mosquitto_passwd") and shutil.which("dash")):
        pytest.skip("needs mosquitto_passwd and dash")
    passwd = tmp_path / "passwd"
    env = {"PATH": os.environ["PATH"], "MOSQUITTO_PASSWORD_FILE": str(passwd), **broker_env}
    subprocess.run(["dash", str(INIT_PASSWORDS), "true"], env=env, check=True,
                   capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "extension-office", "s3cret-pw"],
                   check=True, capture_output=True)
    first = dict(line.split(":", 1) for line in passwd.read_text().splitlines())

    env["MQTT_GATEWAY_PASSWORD"] = "rotated-password"
    ran = subprocess.run(["dash", str(INIT_PASSWORDS), "echo", "handed-over"], env=env,
                         check=True, capture_output=True, text=True)
    assert ran.stdout.strip().endswith("handed-over"), "the entrypoint must exec its command"
    second = dict(line.split(":", 1) for line in passwd.read_text().splitlines())

    assert set(second) == {broker_env["MQTT_GATEWAY_USER"], broker_env["MQTT_NODES_USER"],
                           "extension-office"}
    assert second["extension-office"] == first["extension-office"]
    assert second[broker_env["MQTT_GATEWAY_USER"]] != first[broker_env["MQTT_GATEWAY_USER"]]
    assert "rotated-password" not in passwd.read_text(), "only hashes are stored"
    assert passwd.stat().st_mode & 0o077 == 0, "the password file is private"

    env["MQTT_NODES_PASSWORD"] = ""
    refused = subprocess.run(["dash", str(INIT_PASSWORDS), "true"], env=env,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "MQTT_" in refused.stderr


# --------------------------------------------------------------------------- grafana


def test_grafana_datasource_is_influxql_on_the_stack_influxdb(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert _mounts(grafana)["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    grafana_env = environment(grafana)
    influx_env = environment(compose["services"]["influxdb"])

    doc = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    (source,) = doc["datasources"]
    assert source["type"] == "influxdb" and source["uid"] == "satoyama-influxdb"
    assert urlsplit(source["url"]).hostname == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    # Grafana expands $VARS in provisioning files from its own environment.
    expanded = {**source["jsonData"], **source["secureJsonData"]}
    expanded = {k: interpolate_text(str(v), grafana_env) for k, v in expanded.items()}
    # InfluxQL database = the bucket the DBRP init script maps (10-dbrp.sh uses INIT_BUCKET).
    assert expanded["dbName"] == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert expanded["httpHeaderName1"] == "Authorization"
    assert expanded["httpHeaderValue1"] == f"Token {influx_env['DOCKER_INFLUXDB_INIT_ADMIN_TOKEN']}"
    assert "DOCKER_INFLUXDB_INIT_BUCKET" in DBRP_SCRIPT.read_text()


def test_grafana_dashboard_provider_reads_the_mounted_json(compose: dict[str, Any]) -> None:
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "satoyama.yaml").read_text())
    (provider,) = doc["providers"]
    mounts = _mounts(compose["services"]["grafana"])
    assert mounts[provider["options"]["path"]] == "./dashboards/json"
    assert (REPO / "dashboards" / "json").is_dir()


def test_influxdb_init_scripts_are_mounted(compose: dict[str, Any]) -> None:
    mounts = _mounts(compose["services"]["influxdb"])
    assert (REPO / mounts["/docker-entrypoint-initdb.d"]).resolve() == DBRP_SCRIPT.parent
    assert environment(compose["services"]["influxdb"])["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
