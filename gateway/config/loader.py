"""Loading settings: YAML file, then ``SATOYAMA_`` environment overrides, then the disk.

The order of work, so that one run reports every problem:

1. read the file and parse it, keeping the line of every key (:mod:`.yamlmarks`);
2. merge the environment over it (``SATOYAMA_SINKS__INFLUXDB__TOKEN`` sets
   ``sinks.influxdb.token``), remembering which keys came from which variable;
3. validate the merged data with :class:`Settings` and translate every error;
4. check what the settings point to on disk: rule files, TLS files, secret files.

Relative paths of files the config refers to (``rules``, ``tls.*_file``, ``*_file``
secrets) are resolved against the directory of the config file, as Prometheus does;
``data_dir`` and ``sinks.sqlite.path`` stay relative to the working directory.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import SecretStr, ValidationError

from gateway.config.export import MIN_PSEUDONYM_KEY_CHARS
from gateway.config.models import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    SerialSourceConfig,
    Settings,
)
from gateway.config.problems import ConfigError, ConfigProblem, Loc, dotted, translate
from gateway.config.yamlmarks import YamlMarks, compose_marks

if TYPE_CHECKING:
    from rules.loader import LoadedRule

log = logging.getLogger(__name__)

ENV_FILE = Path("<environment>")

# Files the settings refer to, by key path; read and checked before anything starts.
_TLS_FILES: tuple[Loc, ...] = tuple(
    ("sources", "mqtt", "tls", name) for name in ("ca_file", "cert_file", "key_file")
)
_SECRET_FILES: dict[Loc, Loc] = {  # file key -> the secret key it fills
    ("sources", "mqtt", "password_file"): ("sources", "mqtt", "password"),
    ("sinks", "influxdb", "token_file"): ("sinks", "influxdb", "token"),
    ("export", "pseudonym_key_file"): ("export", "pseudonym_key"),
}


def load_settings(path: Path | None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a YAML file (or none) with ``SATOYAMA_`` overrides from ``env``
    (default ``os.environ``); raises :class:`ConfigError` listing every problem."""
    settings, problems = _load(path, os.environ if env is None else env)
    if settings is None:
        raise ConfigError(problems)
    for warning in problems:
        log.warning("%s", warning)
    return settings


def check_config(path: Path, *, env: Mapping[str, str] | None = None) -> list[ConfigProblem]:
    """Every problem with the config file at ``path``: none, or only warnings, if it is
    usable."""
    return _load(path, os.environ if env is None else env)[1]


def default_settings(
    data_dir: Path, site: str = "demo", *, serial_port: str | None = None
) -> Settings:
    """The embedded configuration of ``satoyama demo``: SQLite in ``data_dir``, the
    system clock trusted, and a serial source on ``serial_port`` if one is given (the demo
    creates its pty at run time)."""
    serial = None if serial_port is None else SerialSourceConfig(port=serial_port)
    return Settings(site=site, data_dir=data_dir, sources={"serial": serial})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pipeline


class _Context:
    def __init__(self, file: Path, marks: YamlMarks) -> None:
        self.file = file
        self.marks = marks
        self.env_paths: dict[Loc, str] = {}
        self.problems: list[ConfigProblem] = []
        self.rules: list[LoadedRule] = []  # the rule files that loaded

    def locate(self, loc: Loc) -> tuple[int | None, str | None]:
        for end in range(len(loc), 0, -1):
            var = self.env_paths.get(loc[:end])
            if var is not None:
                return None, var
        return self.marks.line_of(loc), None

    def add(self, loc: tuple[str | int, ...], message: str, hint: str = "", *,
            warning: bool = False) -> None:
        line, var = self.locate(tuple(str(p) for p in loc))
        self.problems.append(ConfigProblem(self.file, dotted(loc), line, message, hint,
                                           env_var=var, warning=warning))


def _load(path: Path | None, env: Mapping[str, str]) -> tuple[Settings | None, list[ConfigProblem]]:
    if path is None:
        data: dict[str, Any] = {}
        ctx = _Context(ENV_FILE, YamlMarks())
        base_dir = Path.cwd()
    else:
        parsed = _read_yaml(path)
        if isinstance(parsed, ConfigProblem):
            return None, [parsed]
        data, marks = parsed
        ctx = _Context(path, marks)
        base_dir = Path(os.path.abspath(path)).parent  # normalised, symlinks kept
        for dup in marks.duplicates:
            ctx.problems.append(
                ConfigProblem(
                    path,
                    dotted(dup.path),
                    dup.line,
                    f"duplicate key (first given at line {dup.first_line})",
                    "YAML keeps only the last one; remove one of them",
                )
            )

    _merge_environment(data, env, ctx)
    # Non-text keys cannot be keyword arguments, and underscore keys are not fields.
    for key in [k for k in data if not isinstance(k, str) or k.startswith("_")]:
        allowed = ", ".join(Settings.model_fields)
        ctx.add((str(key),), f"unknown key {key!r}", f"allowed keys here: {allowed}")
        del data[key]

    settings: Settings | None = None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        for error in exc.errors():
            ctx.problems.extend(translate(error, ctx.file, ctx.locate))

    secrets = _check_files(data, base_dir, ctx)
    if settings is not None:
        _check_crops(settings, ctx)
    problems = sorted(ctx.problems, key=lambda p: (p.env_var is not None, p.line or 0))
    if settings is None or any(not p.warning for p in problems):
        return None, problems
    _apply_files(settings, base_dir, secrets)
    return settings, problems


def _read_yaml(path: Path) -> tuple[dict[str, Any], YamlMarks] | ConfigProblem:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigProblem(
            path,
            "",
            None,
            "config file not found",
            "check the path given with -c; examples are in examples/",
        )
    except IsADirectoryError:
        return ConfigProblem(path, "", None, "is a directory, not a config file")
    except UnicodeDecodeError as exc:
        return ConfigProblem(
            path, "", None, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8"
        )
    except OSError as exc:
        return ConfigProblem(
            path,
            "",
            None,
            f"cannot read the config file: {exc.strerror}",
            "check the file's permissions",
        )
    try:
        marks = compose_marks(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return _yaml_problem(path, exc)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return ConfigProblem(
            path,
            "",
            1,
            f"expected a mapping of keys at the top, got {type(data).__name__}",
            "start with `site: <name>`",
        )
    return data, marks


def _yaml_problem(path: Path, exc: yaml.YAMLError, key: str = "") -> ConfigProblem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    hint = "check indentation and quoting"
    if context:
        hint = f"{context}; {hint}"
    if mark is None:
        return ConfigProblem(path, key, None, f"invalid YAML: {problem}", hint)
    return ConfigProblem(
        path, key, mark.line + 1, f"invalid YAML: {problem}", hint, column=mark.column + 1
    )


# --------------------------------------------------------------------------- environment


def _merge_environment(data: dict[str, Any], env: Mapping[str, str], ctx: _Context) -> None:
    """Apply ``SATOYAMA_A__B__C=value`` as ``a.b.c: value`` over the file's data.

    Names are case-insensitive and match existing keys case-insensitively (so
    ``SATOYAMA_DEVICES__N17__KEY`` reaches node ``N17``). Values starting with ``[`` or
    ``{`` are JSON (``SATOYAMA_SOURCES__MQTT__TOPICS='["a/+/up"]'``); everything else is a
    string that validation converts. Variables whose first part is not a top-level key
    (``SATOYAMA_CONFIG``, say) are not overrides and are left alone.
    """
    top_level = set(Settings.model_fields)
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
        if parts[0] not in top_level:
            continue
        raw = env[name]
        if not all(parts):
            ctx.problems.append(
                ConfigProblem(
                    ctx.file,
                    "",
                    None,
                    "empty key part in the variable name",
                    f"separate keys with a double underscore: {ENV_PREFIX}SINKS__INFLUXDB__TOKEN",
                    env_var=name,
                )
            )
            continue
        value: Any = raw
        if raw.lstrip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                ctx.problems.append(
                    ConfigProblem(
                        ctx.file,
                        dotted(parts),
                        None,
                        f"value is not valid JSON: {exc.msg}",
                        'lists and mappings are written as JSON, e.g. ["satoyama/+/+/up"]',
                        env_var=name,
                    )
                )
                continue
        node = data
        loc: list[str] = []
        for part in parts[:-1]:
            key = _match_key(node, part)
            loc.append(key)
            if not isinstance(node.get(key), dict):
                node[key] = {}
                ctx.env_paths.setdefault(tuple(loc), name)
            node = node[key]
        key = _match_key(node, parts[-1])
        loc.append(key)
        node[key] = value
        ctx.env_paths[tuple(loc)] = name


def _match_key(node: dict[str, Any], wanted: str) -> str:
    for key in node:
        if isinstance(key, str) and key.lower() == wanted:
            return key
    return wanted


# --------------------------------------------------------------------------- files


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _resolve(base_dir: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _read_referenced(path: Path, what: str) -> tuple[str | None, str, str]:
    """(text, message, hint) — text None when the file cannot be used."""
    try:
        return path.read_text(encoding="utf-8"), "", ""
    except FileNotFoundError:
        return (
            None,
            f"{what} {path} not found",
            "relative paths are resolved against the config file's directory",
        )
    except IsADirectoryError:
        return None, f"{what} {path} is a directory", "give a file"
    except UnicodeDecodeError:
        return None, f"{what} {path} is not UTF-8 text", ""
    except OSError as exc:
        return (
            None,
            f"{what} {path} cannot be read: {exc.strerror}",
            "check the file's permissions for the gateway's user",
        )


def _check_crops(settings: Settings, ctx: _Context) -> None:
    """Warn of registered crops that no loaded rule is for (rules/crops.py)."""
    from rules.crops import crop_notes
    from rules.presets import crop_presets

    nodes: dict[str, list[str]] = {}
    for node, dev in settings.devices.items():
        if dev.crop:
            nodes.setdefault(dev.crop, []).append(node)
    for note in crop_notes(nodes, ctx.rules, crop_presets()):
        named = nodes[note.crop]
        also = f" (nodes {', '.join(named)})" if len(named) > 1 else ""
        ctx.add(("devices", named[0], "crop"), note.message + also, note.hint, warning=True)


def _check_files(data: dict[str, Any], base_dir: Path, ctx: _Context) -> dict[Loc, str]:
    """Check rule, TLS and secret files; return the secrets read, by secret key."""
    from rules.loader import PRESET_PREFIX, check_rule_files, resolve_rule_path
    from rules.presets import names as preset_names

    rules = data.get("rules")
    if isinstance(rules, list):
        readable: list[str | Path] = []
        for i, entry in enumerate(rules):
            if not isinstance(entry, str | Path):
                continue  # validation reports the type
            rule_path = resolve_rule_path(entry, base_dir)
            if str(entry).startswith(PRESET_PREFIX) and not rule_path.is_file():
                ctx.add(("rules", i), f"there is no preset {str(entry)[7:]!r}",
                        "shipped presets: " + ", ".join(preset_names()))
                continue
            text, message, hint = _read_referenced(rule_path, "rule file")
            if text is None:
                ctx.add(("rules", i), message, hint)
                continue
            try:
                yaml.safe_load(text)
            except yaml.YAMLError as exc:
                inner = _yaml_problem(rule_path, exc)
                where = f"{rule_path}:{inner.line}:{inner.column}" if inner.line else rule_path
                ctx.add(
                    ("rules", i),
                    f"rule file is not valid YAML: {where}: "
                    f"{inner.message.removeprefix('invalid YAML: ')}",
                    inner.hint,
                )
                continue
            readable.append(entry)
        # The rules themselves, located in their own files (and names across files).
        ctx.rules, found = check_rule_files(readable, base_dir)
        ctx.problems.extend(found)

    for loc in _TLS_FILES:
        value = _get(data, loc)
        if isinstance(value, str | Path):
            text, message, hint = _read_referenced(_resolve(base_dir, value), "TLS file")
            if text is None:
                ctx.add(loc, message, hint)

    secrets: dict[Loc, str] = {}
    for file_loc, secret_loc in _SECRET_FILES.items():
        value = _get(data, file_loc)
        if not isinstance(value, str | Path):
            continue
        text, message, hint = _read_referenced(_resolve(base_dir, value), "secret file")
        if text is None:
            ctx.add(file_loc, message, hint)
        elif not text.strip():
            ctx.add(file_loc, f"secret file {value} is empty", "write the secret on one line")
        else:
            secrets[secret_loc] = text.strip()
    key = secrets.get(("export", "pseudonym_key"))
    if key is not None and len(key) < MIN_PSEUDONYM_KEY_CHARS:
        ctx.add(("export", "pseudonym_key_file"),
                f"the pseudonym key has fewer than {MIN_PSEUDONYM_KEY_CHARS} characters",
                "site names are easy to guess, so a short key lets anyone undo the "
                "pseudonyms; make one with `head -c 24 /dev/urandom | base64 > export-key`")
    return secrets


def _apply_files(settings: Settings, base_dir: Path, secrets: dict[Loc, str]) -> None:
    from rules.loader import resolve_rule_path

    settings.rules = [resolve_rule_path(p, base_dir) for p in settings.rules]
    mqtt = settings.sources.mqtt
    if mqtt is not None:
        if mqtt.tls is not None:
            tls = mqtt.tls
            tls.ca_file = tls.ca_file and _resolve(base_dir, tls.ca_file)
            tls.cert_file = tls.cert_file and _resolve(base_dir, tls.cert_file)
            tls.key_file = tls.key_file and _resolve(base_dir, tls.key_file)
        if mqtt.password_file is not None:
            mqtt.password_file = _resolve(base_dir, mqtt.password_file)
            mqtt.password = SecretStr(secrets[("sources", "mqtt", "password")])
    influx = settings.sinks.influxdb
    if influx is not None and influx.token_file is not None:
        influx.token_file = _resolve(base_dir, influx.token_file)
        influx.token = SecretStr(secrets[("sinks", "influxdb", "token")])
    export = settings.export
    if export.pseudonym_key_file is not None:
        export.pseudonym_key_file = _resolve(base_dir, export.pseudonym_key_file)
        export.pseudonym_key = SecretStr(secrets[("export", "pseudonym_key")])
