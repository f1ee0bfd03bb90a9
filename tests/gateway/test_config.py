"""Settings: examples load, defaults, environment overrides, secrets, paths, rendering.

Located problems for broken files are table-driven in test_config_cases.py.
"""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import pytest
import yaml

from gateway.config import (
    ConfigError,
    ConfigProblem,
    DeviceConfig,
    Settings,
    check_config,
    default_settings,
    load_settings,
)
from gateway.config.reference import reference_markdown

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))

INFLUX_TOKEN = "influx-token-5f1d0c9e"  # looks real enough to be found if leaked
MQTT_PASSWORD = "mqtt-password-7a2b"
NODE_KEY = "00112233445566778899aabbccddeeff"


def _secrets_for(path: Path) -> dict[str, str]:
    """The secret variables a deployment of this example would set."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    env = {}
    sinks, sources = raw.get("sinks") or {}, raw.get("sources") or {}
    if sinks.get("influxdb"):
        env["SATOYAMA_SINKS__INFLUXDB__TOKEN"] = INFLUX_TOKEN
    if sources.get("mqtt"):
        env["SATOYAMA_SOURCES__MQTT__PASSWORD"] = MQTT_PASSWORD
    return env


def write(tmp_path: Path, text: str, name: str = "satoyama.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- examples


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"demo.yaml", "farm-pi.yaml", "farm-influx.yaml", "extension-office.yaml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_loads(example: Path) -> None:
    env = _secrets_for(example)
    assert check_config(example, env=env) == []
    settings = load_settings(example, env=env)
    assert settings.site
    if settings.sinks.influxdb is not None:
        assert settings.sinks.influxdb.token is not None
        assert settings.sinks.influxdb.token.get_secret_value() == INFLUX_TOKEN
    dumped = settings.model_dump_json()
    assert INFLUX_TOKEN not in dumped and MQTT_PASSWORD not in dumped


def test_farm_pi_example_is_what_it_says() -> None:
    s = load_settings(REPO / "examples" / "farm-pi.yaml", env={})
    assert s.sources.serial is not None and s.sources.serial.format == "rylr"
    assert s.sources.serial.port == "/dev/ttyUSB0"
    assert s.sources.mqtt is None and s.sinks.influxdb is None
    assert s.clock.require_sync is True
    n17 = s.devices_for("n17")
    assert n17 is not None and n17.sensors is not None
    assert n17.sensors["soil_30cm"].depth_cm == 30
    assert n17.calibrate("soil_moisture_pct", 30.0) == pytest.approx(30.0 * 1.08 - 2.5)


def test_extension_office_uses_a_shared_subscription() -> None:
    path = REPO / "examples" / "extension-office.yaml"
    s = load_settings(path, env=_secrets_for(path))
    assert s.sources.mqtt is not None
    assert s.sources.mqtt.subscriptions == ["$share/satoyama-ingest/satoyama/+/+/up"]
    assert s.sources.mqtt.uses_tls and s.sources.mqtt.port == 8883


def test_influx_example_without_its_token_names_the_variable() -> None:
    problems = check_config(REPO / "examples" / "farm-influx.yaml", env={})
    assert [p.key for p in problems] == ["sinks.influxdb.token"]
    assert "SATOYAMA_SINKS__INFLUXDB__TOKEN" in problems[0].hint


def test_reference_doc_is_generated_from_the_model() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == reference_markdown(), (
        "docs/configuration.md is stale: python -m gateway.config.reference > docs/configuration.md"
    )


# --------------------------------------------------------------------------- defaults


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "site: kamiyama\n"), env={})
    assert s.timezone == "Asia/Tokyo" and s.tzinfo.key == "Asia/Tokyo"
    assert s.data_dir == Path("./data")
    assert s.gateway_id == socket.gethostname()
    assert s.sources.serial is None and s.sources.mqtt is None
    assert s.sinks.sqlite.path == Path("data/satoyama.db") == s.sqlite_path
    assert s.sinks.sqlite.max_size_mb == 2048
    assert s.sinks.sqlite.full_policy == "drop_oldest"
    assert s.sinks.sqlite.retention_days == 0
    assert s.sinks.influxdb is None
    assert s.validation.max_clock_skew_s == 300
    assert s.validation.skew_policy == "receive_time"
    assert s.clock.require_sync is False
    assert s.clock.not_before == date(2026, 1, 1)
    assert (s.pipeline.queue_size, s.pipeline.batch_max, s.pipeline.batch_interval_ms) == (
        2000,
        500,
        200,
    )
    assert s.rules == [] and s.devices == {}
    assert s.devices_for("n1") is None
    assert s.device_site("n1") == "kamiyama" and s.device_plot("n1") == "unassigned"


def test_section_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
site: kamiyama
data_dir: /srv/satoyama
sources:
  serial: {port: /dev/ttyUSB0}
  mqtt: {url: "mqtt://broker"}
sinks:
  influxdb: {url: "http://influx:8086", api: v1, database: farm}
devices:
  n1: {}
  n2: {site: other-farm, plot: paddy}
""",
    )
    s = load_settings(path, env={})
    assert s.sources.serial is not None
    assert (s.sources.serial.baudrate, s.sources.serial.format) == (115200, "frame")
    assert s.sources.serial.reopen_interval_s == 2.0
    mqtt = s.sources.mqtt
    assert mqtt is not None
    assert mqtt.topic_filters == ["satoyama/+/+/up"] and mqtt.qos == 1
    assert (mqtt.host, mqtt.port, mqtt.uses_tls) == ("broker", 1883, False)
    assert mqtt.subscriptions == ["satoyama/+/+/up"]
    influx = s.sinks.influxdb
    assert influx is not None
    assert (influx.batch_size, influx.flush_interval_s, influx.enabled) == (5000, 1.0, True)
    assert s.sqlite_path == Path("/srv/satoyama/satoyama.db")
    n1 = s.devices_for("n1")
    assert n1 is not None and (n1.site, n1.plot) == ("kamiyama", "unassigned")
    assert n1.calibrate("temperature_c", 21.5) == 21.5
    assert s.device_site("n2") == "other-farm" and s.device_plot("n2") == "paddy"


def test_default_settings_for_the_demo(tmp_path: Path) -> None:
    s = default_settings(tmp_path)
    assert s.site == "demo"
    assert s.sqlite_path == tmp_path / "satoyama.db"
    assert s.sources.serial is None
    s = default_settings(tmp_path, "hill", serial_port="/dev/pts/7")
    assert s.site == "hill"
    assert s.sources.serial is not None and s.sources.serial.port == "/dev/pts/7"


def test_default_settings_agree_with_the_demo_example(tmp_path: Path) -> None:
    example = load_settings(REPO / "examples" / "demo.yaml", env={})
    built = default_settings(tmp_path)
    assert example.site == built.site
    assert example.clock == built.clock
    assert example.pipeline == built.pipeline
    assert example.sources.serial is not None
    assert example.sources.serial.format == "frame"


def test_calibration_and_key_helpers() -> None:
    device = DeviceConfig.model_validate(
        {"calibration": {"soil_moisture_pct": {"scale": 2, "offset": -1}}, "key": NODE_KEY.upper()}
    )
    assert device.calibrate("soil_moisture_pct", 10.0) == 19.0
    assert device.key_bytes() == bytes.fromhex(NODE_KEY)


# --------------------------------------------------------------------------- environment


INFLUX_FILE = """\
site: kamiyama
pipeline:
  queue_size: 100
sinks:
  influxdb:
    url: http://localhost:8086
    org: farm
    bucket: satoyama
devices:
  N17:
    plot: upper
"""


def test_environment_beats_the_file(tmp_path: Path) -> None:
    env = {
        "SATOYAMA_PIPELINE__QUEUE_SIZE": "250",
        "SATOYAMA_SINKS__INFLUXDB__TOKEN": INFLUX_TOKEN,
        "SATOYAMA_SINKS__INFLUXDB__BUCKET": "other",
        "SATOYAMA_SOURCES__MQTT__URL": "mqtts://broker.example.org",
        "SATOYAMA_SOURCES__MQTT__TOPICS": '["a/+/up", "b/#"]',
        "SATOYAMA_DEVICES__N17__KEY": NODE_KEY,  # matches N17 case-insensitively
        "SATOYAMA_CLOCK__REQUIRE_SYNC": "true",
        "SATOYAMA_CONFIG": "/etc/satoyama.yaml",  # not an override: left alone
        "OTHER_VAR": "x",
    }
    s = load_settings(write(tmp_path, INFLUX_FILE), env=env)
    assert s.pipeline.queue_size == 250
    assert s.sinks.influxdb is not None and s.sinks.influxdb.bucket == "other"
    assert s.sinks.influxdb.org == "farm"  # the rest of the file's section stays
    assert s.sinks.influxdb.token is not None
    assert s.sinks.influxdb.token.get_secret_value() == INFLUX_TOKEN
    assert s.sources.mqtt is not None and s.sources.mqtt.topic_filters == ["a/+/up", "b/#"]
    assert s.clock.require_sync is True
    assert list(s.devices) == ["N17"]
    assert s.devices["N17"].key_bytes() == bytes.fromhex(NODE_KEY)


def test_process_environment_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATOYAMA_SINKS__INFLUXDB__TOKEN", INFLUX_TOKEN)
    monkeypatch.setenv("SATOYAMA_SITE", "from-env")
    s = load_settings(write(tmp_path, INFLUX_FILE))
    assert s.site == "from-env"


def test_environment_only_without_a_file() -> None:
    s = load_settings(None, env={"SATOYAMA_SITE": "kamiyama", "SATOYAMA_DATA_DIR": "/tmp/x"})
    assert s.site == "kamiyama" and s.sqlite_path == Path("/tmp/x/satoyama.db")
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={})
    assert [p.key for p in caught.value.problems] == ["site"]


def test_environment_problems_name_the_variable(tmp_path: Path) -> None:
    env = {
        "SATOYAMA_SINKS__INFLUXDB__TOKEN": INFLUX_TOKEN,
        "SATOYAMA_SINKS__INFLUXDB__BATCH_SIZE": "big",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, INFLUX_FILE), env=env)
    (problem,) = caught.value.problems
    assert problem.env_var == "SATOYAMA_SINKS__INFLUXDB__BATCH_SIZE"
    assert problem.line is None
    assert str(problem).startswith(
        "SATOYAMA_SINKS__INFLUXDB__BATCH_SIZE (environment): sinks.influxdb.batch_size: "
    )


# --------------------------------------------------------------------------- secrets


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    text = INFLUX_FILE + "    key: " + NODE_KEY + "\n"
    text += "sources:\n  mqtt:\n    url: mqtt://broker\n    username: gw\n"
    env = {
        "SATOYAMA_SINKS__INFLUXDB__TOKEN": INFLUX_TOKEN,
        "SATOYAMA_SOURCES__MQTT__PASSWORD": MQTT_PASSWORD,
    }
    s = load_settings(write(tmp_path, text), env=env)
    shown = [
        repr(s),
        str(s),
        s.model_dump_json(),
        str(s.model_dump(mode="json")),
        str(s.model_dump()),
        repr(s.sinks.influxdb),
        repr(s.devices["N17"]),
    ]
    for text_shown in shown:
        for secret in (INFLUX_TOKEN, MQTT_PASSWORD, NODE_KEY):
            assert secret not in text_shown
    assert "**********" in s.model_dump_json()


def test_a_bad_secret_is_not_echoed_in_problems(tmp_path: Path) -> None:
    bad_key = "zz" + NODE_KEY
    text = f"site: kamiyama\ndevices:\n  n1:\n    key: {bad_key}\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={"SATOYAMA_SOURCES__MQTT__PASSWORD": "12"})
    assert bad_key not in str(caught.value)
    assert "devices.n1.key" in str(caught.value)


def test_secrets_from_files(tmp_path: Path) -> None:
    write(tmp_path, INFLUX_TOKEN + "\n", "secrets/influx-token")
    write(tmp_path, MQTT_PASSWORD + "\n", "secrets/mqtt-password")
    # The token file is named by the environment, the password file by the config file.
    text = INFLUX_FILE + "sources:\n  mqtt:\n    url: mqtt://broker\n"
    text += "    password_file: secrets/mqtt-password\n"
    config = write(tmp_path / "etc", text)
    env = {"SATOYAMA_SINKS__INFLUXDB__TOKEN_FILE": str(tmp_path / "secrets/influx-token")}
    # password_file is relative to the config file's directory, which has no secrets/
    problems = check_config(config, env=env)
    assert [p.key for p in problems] == ["sources.mqtt.password_file"]
    assert problems[0].line == 15

    config = write(tmp_path, text)
    s = load_settings(config, env=env)
    assert s.sinks.influxdb is not None and s.sinks.influxdb.token is not None
    assert s.sinks.influxdb.token.get_secret_value() == INFLUX_TOKEN
    assert s.sources.mqtt is not None and s.sources.mqtt.password is not None
    assert s.sources.mqtt.password.get_secret_value() == MQTT_PASSWORD
    assert s.sources.mqtt.password_file == tmp_path / "secrets/mqtt-password"


def test_secret_in_file_and_directly_is_refused(tmp_path: Path) -> None:
    write(tmp_path, INFLUX_TOKEN, "token")
    config = write(
        tmp_path, INFLUX_FILE.replace("bucket: satoyama", "bucket: b\n    token_file: token")
    )
    problems = check_config(config, env={"SATOYAMA_SINKS__INFLUXDB__TOKEN": "t"})
    assert [(p.key, p.line) for p in problems] == [("sinks.influxdb.token_file", 9)]
    assert "either token or token_file" in problems[0].message


def test_an_empty_secret_file_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "\n", "token")
    config = write(
        tmp_path, INFLUX_FILE.replace("bucket: satoyama", "bucket: b\n    token_file: token")
    )
    problems = check_config(config, env={})
    assert [(p.key, p.message) for p in problems] == [
        ("sinks.influxdb.token_file", "secret file token is empty")
    ]


# --------------------------------------------------------------------------- paths


def test_rule_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "rules: []\n", "etc/rules/frost.yaml")
    write(tmp_path, "rules: []\n", "shared/paddy.yaml")
    text = f"site: kamiyama\nrules:\n  - rules/frost.yaml\n  - {tmp_path / 'shared/paddy.yaml'}\n"
    config = write(tmp_path, text, "etc/satoyama.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative_config = Path("..") / "etc" / "satoyama.yaml"
    s = load_settings(relative_config, env={})
    assert s.rules == [config.parent / "rules/frost.yaml", tmp_path / "shared/paddy.yaml"]
    assert all(p.is_absolute() and p.exists() for p in s.rules)


def test_tls_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        write(tmp_path, "-----BEGIN-----\n", f"etc/certs/{name}")
    text = """\
site: kamiyama
sources:
  mqtt:
    url: mqtts://broker
    tls: {ca_file: certs/ca.pem, cert_file: certs/client.pem, key_file: certs/client.key}
"""
    s = load_settings(write(tmp_path, text, "etc/satoyama.yaml"), env={})
    assert s.sources.mqtt is not None and s.sources.mqtt.tls is not None
    assert s.sources.mqtt.tls.ca_file == tmp_path / "etc/certs/ca.pem"
    assert s.sources.mqtt.tls.key_file == tmp_path / "etc/certs/client.key"


# --------------------------------------------------------------------------- problems


def test_problem_renders_file_line_key_message_hint() -> None:
    problem = ConfigProblem(
        file=Path("examples/farm.yaml"),
        key="sinks.influxdb.api",
        line=12,
        message="'v3' is not one of v1, v2",
        hint="use v2 for InfluxDB 2.x/3.x, v1 for InfluxDB 1.x",
    )
    assert str(problem) == (
        "examples/farm.yaml:12: sinks.influxdb.api: 'v3' is not one of v1, v2"
        " — hint: use v2 for InfluxDB 2.x/3.x, v1 for InfluxDB 1.x"
    )


def test_real_problem_renders_as_documented(tmp_path: Path) -> None:
    text = "site: kamiyama\nsinks:\n  influxdb:\n    url: http://h:8086\n    api: v3\n"
    (problem,) = check_config(write(tmp_path, text), env={})
    assert str(problem) == (
        f"{tmp_path / 'satoyama.yaml'}:5: sinks.influxdb.api: 'v3' is not one of v1, v2"
        " — hint: use v2 for InfluxDB 2.x/3.x, v1 for InfluxDB 1.x"
    )


def test_config_error_lists_every_problem(tmp_path: Path) -> None:
    text = "site: kamiyama\npipeline: {queue_size: 0, batch_max: x}\nfoo: 1\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={})
    message = str(caught.value)
    assert message.startswith("3 problems in the configuration:")
    for key in ("pipeline.queue_size", "pipeline.batch_max", "foo"):
        assert key in message
    assert len(caught.value.problems) == 3


def test_missing_file(tmp_path: Path) -> None:
    (problem,) = check_config(tmp_path / "nope.yaml", env={})
    assert problem.file == tmp_path / "nope.yaml" and problem.line is None
    assert problem.message == "config file not found"
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "nope.yaml", env={})


def test_directory_and_non_text_files(tmp_path: Path) -> None:
    (problem,) = check_config(tmp_path, env={})
    assert "directory" in problem.message
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"site: \xff\xfe\n")
    (problem,) = check_config(binary, env={})
    assert "UTF-8" in problem.message


def test_invalid_yaml_has_line_and_column(tmp_path: Path) -> None:
    (problem,) = check_config(write(tmp_path, "site: [kamiyama\n"), env={})
    assert problem.key == "" and problem.line == 2 and problem.column == 1
    assert str(problem).startswith(f"{tmp_path / 'satoyama.yaml'}:2:1: invalid YAML")


def test_settings_model_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError):
        Settings.model_validate({"site": "x", "sinks": {"sqlite": {"size": 1}}})


def test_device_ids_are_normalised_and_map_to_their_node() -> None:
    s = Settings.model_validate({"site": "kamiyama", "devices": {
        "n1": {"ids": ["lorawan:A8-40-41-00-01-81-C6-1F", "rtl433:Fineoffset-WH51/0d2f1a"]},
        "n2": {"ids": ["ecowitt:GW1100B/soil1"]},
    }})
    assert s.external_ids == {
        "lorawan:a84041000181c61f": "n1",
        "rtl433:fineoffset-wh51/0d2f1a": "n1",  # every scheme: matched case aside
        "ecowitt:gw1100b/soil1": "n2",
    }


def test_reference_names_what_a_topics_entry_may_be() -> None:
    """A topics entry is a filter string or a mapping: the model's type alone says "section"."""
    row = next(r for r in reference_markdown().splitlines()
               if r.startswith("| `sources.mqtt.topics` |"))
    assert row.split(" | ")[1] == "list of string or mapping"
