"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine.

The schema check uses the Compose Specification JSON schema (tests/deploy/compose_spec.json,
see its NOTICE); the rest are the stack's own rules: secrets only from .env and loudly
required, only Grafana and MQTT published, health checks everywhere and start order by
health, named volumes, restart policy.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from compose_support import (
    COMPOSE_FILE,
    REPO,
    MissingVariable,
    environment,
    interpolate,
    strings,
    variable_uses,
)

jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[test]'")

SCHEMA_FILE = Path(__file__).with_name("compose_spec.json")
DOCKERFILE = REPO / "Dockerfile"

# Service -> container ports it may publish. Nothing else reaches the host.
PUBLISHED = {"grafana": {3000}, "mosquitto": {1883, 8883}}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|KEY")


def _validator() -> Any:
    schema = json.loads(SCHEMA_FILE.read_text())
    # The file names draft 2019-09 with a trailing '#' that jsonschema does not look up.
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/schema")
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def _errors(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _validator().iter_errors(document)
    ]


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _container_port(spec: str | int | dict[str, Any]) -> int:
    # Short syntax: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]; long syntax: target.
    if isinstance(spec, dict):
        return int(spec["target"])
    return int(str(spec).split("/")[0].rsplit(":", 1)[-1])


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


# --------------------------------------------------------------------------- schema


def test_compose_file_matches_the_compose_specification(compose_raw: dict[str, Any]) -> None:
    assert _errors(compose_raw) == []


def test_compose_file_matches_the_specification_after_interpolation(
    compose: dict[str, Any],
) -> None:
    assert _errors(compose) == []


def test_schema_check_catches_a_broken_file(compose_raw: dict[str, Any]) -> None:
    # Guard against a validator that accepts anything.
    broken = json.loads(json.dumps(compose_raw))
    broken["services"]["gateway"]["restart_policy"] = "always"
    broken["services"]["grafana"]["depends_on"]["influxdb"]["condition"] = "healthy"
    errors = _errors(broken)
    assert any("restart_policy" in e for e in errors), errors
    assert any("depends_on" in e for e in errors), errors


# --------------------------------------------------------------------------- variables


def test_every_variable_is_documented_in_env_example(
    compose_raw: dict[str, Any], env_example: dict[str, str]
) -> None:
    used = {name for s in strings(compose_raw) for name, _ in variable_uses(s)}
    assert used, "docker-compose.yml should take its settings from .env"
    assert sorted(used - env_example.keys()) == [], "used in compose, missing in .env.example"
    assert sorted(env_example.keys() - used) == [], "in .env.example, unused by compose"


def test_every_env_example_entry_is_documented_by_a_comment() -> None:
    # Each KEY=VALUE line belongs to a block of settings directly under a comment.
    lines = (REPO / ".env.example").read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = number - 1
            while above >= 0 and lines[above] and not lines[above].startswith("#"):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), (
                f".env.example:{number + 1}: {line.split('=')[0]} needs a comment above it"
            )


def test_variables_either_are_required_or_have_a_default(compose_raw: dict[str, Any]) -> None:
    # A bare ${VAR} silently becomes "" when .env lacks it: refuse that.
    for s in strings(compose_raw):
        for name, op in variable_uses(s):
            assert op in (":?", ":-"), f"${{{name}}} in {s!r}: use ${{{name}:?...}} or :-default"


def test_secrets_are_required_variables(compose_raw: dict[str, Any]) -> None:
    secret_uses = [
        (name, op)
        for s in strings(compose_raw)
        for name, op in variable_uses(s)
        if SECRET_NAME.search(name)
    ]
    assert {name for name, _ in secret_uses} >= {
        "MQTT_GATEWAY_PASSWORD",
        "MQTT_NODES_PASSWORD",
        "INFLUXDB_ADMIN_PASSWORD",
        "INFLUXDB_ADMIN_TOKEN",
        "GRAFANA_ADMIN_PASSWORD",
    }
    for name, op in secret_uses:
        assert op == ":?", f"secret {name} must be ${{{name}:?...}}, not {op or 'bare'}"


def test_compose_refuses_to_start_without_a_secret(
    compose_raw: dict[str, Any], env_example: dict[str, str]
) -> None:
    for secret in ("INFLUXDB_ADMIN_TOKEN", "MQTT_GATEWAY_PASSWORD"):
        for missing in ({k: v for k, v in env_example.items() if k != secret},
                        {**env_example, secret: ""}):
            with pytest.raises(MissingVariable, match=secret):
                interpolate(compose_raw, missing)


def test_env_example_holds_placeholders_not_secrets(env_example: dict[str, str]) -> None:
    for name, value in env_example.items():
        if SECRET_NAME.search(name):
            assert value.startswith("change-me"), f"{name} in .env.example must be a placeholder"


def test_secret_environment_values_come_from_variables(compose_raw: dict[str, Any]) -> None:
    for name, service in _services(compose_raw).items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert variable_uses(value), f"{name}: {key} is a literal; take it from .env"


def test_dotenv_is_kept_out_of_git_and_the_image() -> None:
    gitignore = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore or "/.env" in gitignore
    dockerignore = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allowlist: everything excluded, then the build inputs re-included.
    assert dockerignore[0] == "*"
    assert not any(line.lstrip("!").startswith(".env") for line in dockerignore[1:])


# --------------------------------------------------------------------------- exposure


def test_only_grafana_and_mosquitto_publish_ports(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert "expose" not in service, f"{name}: nothing else is exposed"
        assert service.get("network_mode") != "host", f"{name}: host networking exposes all"
        ports = {_container_port(p) for p in service.get("ports", [])}
        assert ports <= PUBLISHED.get(name, set()), f"{name} publishes {sorted(ports)}"
    assert {_container_port(p) for p in compose["services"]["grafana"]["ports"]} == {3000}
    assert 1883 in {_container_port(p) for p in compose["services"]["mosquitto"]["ports"]}


def test_services_restart_unless_stopped(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert service.get("restart") == "unless-stopped", name


# --------------------------------------------------------------------------- health


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert check["test"] not in (["NONE"], "NONE"), name


def test_every_dependency_waits_until_healthy(compose: dict[str, Any]) -> None:
    services = _services(compose)
    seen = 0
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with a condition"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert spec == {"condition": "service_healthy"}, f"{name} -> {target}: {spec}"
            seen += 1
    assert set(services["gateway"]["depends_on"]) == {"mosquitto", "influxdb"}
    assert set(services["grafana"]["depends_on"]) == {"influxdb"}
    assert seen == 3


def test_gateway_healthcheck_is_the_dockerfiles(compose: dict[str, Any]) -> None:
    healthchecks = [args for ins, args in _dockerfile_instructions() if ins == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    options, _, command = healthchecks[0].partition(" CMD ")
    assert json.loads(command) == compose["services"]["gateway"]["healthcheck"]["test"][1:]
    assert compose["services"]["gateway"]["healthcheck"]["test"][0] == "CMD"
    flags = dict(opt.lstrip("-").split("=") for opt in shlex.split(options))
    check = compose["services"]["gateway"]["healthcheck"]
    assert {k: flags[k] for k in ("interval", "timeout", "start-period")} == {
        "interval": check["interval"], "timeout": check["timeout"],
        "start-period": check["start_period"],
    }


# --------------------------------------------------------------------------- volumes


def test_data_lives_in_named_volumes_and_repo_mounts_are_read_only(
    compose: dict[str, Any],
) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in _services(compose).items():
        for mount in service.get("volumes", []):
            source, _target, *mode = mount.split(":")
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} is not in the repository"
                assert mode == ["ro"], f"{name}: bind mount {source} should be :ro"
            else:
                assert source in declared, f"{name}: {source} is not a declared named volume"
                used.add(source)
    assert used == declared, f"declared but unused: {sorted(declared - used)}"


# --------------------------------------------------------------------------- image


def test_dockerfile_builds_a_non_root_image_that_runs_the_gateway() -> None:
    instructions = _dockerfile_instructions()
    froms = [args.split()[0] for ins, args in instructions if ins == "FROM"]
    assert froms and all(f == "python:3.11-slim" for f in froms), froms
    final_stage = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM"):]
    users = [args for ins, args in final_stage if ins == "USER"]
    assert users and users[-1] not in ("root", "0"), "the gateway must not run as root"
    cmd = [args for ins, args in final_stage if ins == "CMD"]
    assert json.loads(cmd[-1]) == ["satoyama", "run", "-c", "/config/satoyama.yaml"]


def test_dockerfile_copies_only_what_dockerignore_lets_through() -> None:
    allowed = [
        line.strip()[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    ]
    for ins, args in _dockerfile_instructions():
        if ins != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def test_gateway_service_uses_the_image_paths(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["build"]["context"] == "."
    assert (REPO / gateway["build"].get("dockerfile", "Dockerfile")) == DOCKERFILE
    targets = {m.split(":")[1]: m.split(":")[0] for m in gateway["volumes"]}
    assert targets["/data"] in compose["volumes"]
    assert (REPO / targets["/config/satoyama.yaml"]).is_file()
    assert COMPOSE_FILE.parent == REPO
