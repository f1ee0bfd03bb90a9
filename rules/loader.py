"""Load rule files, reporting every problem with file, line and key (like the config).

Shipped presets are named ``preset:<name>`` (``rules/presets/<name>.yaml``), so a config
says ``rules: [preset:tomato, my-farm.yaml]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from pydantic import ValidationError

from gateway.config.problems import ConfigError, ConfigProblem, translate
from gateway.config.yamlmarks import YamlMarks, compose_marks
from rules.model import Rule, RuleFile

PRESET_PREFIX: Final = "preset:"
PRESET_DIR: Final = Path(__file__).parent / "presets"


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A rule with the file scope it came with."""

    rule: Rule
    file: RuleFile
    path: Path


def resolve_rule_path(entry: str | Path, base_dir: Path | None = None) -> Path:
    """``preset:tomato`` -> the shipped file; a relative path -> against ``base_dir``."""
    text = str(entry)
    if text.startswith(PRESET_PREFIX):
        return PRESET_DIR / f"{text.removeprefix(PRESET_PREFIX)}.yaml"
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def parse_rule_file(path: Path, text: str) -> tuple[RuleFile | None, list[ConfigProblem]]:
    """One rule file's text as a model, or the located problems that stop it."""
    try:
        marks = compose_marks(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [ConfigProblem(
            path, "", mark.line + 1 if mark else None,
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            "check indentation and quoting near that line",
            column=mark.column + 1 if mark else None,
        )]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [ConfigProblem(path, "", 1, "a rule file is a mapping with a `rules:` list",
                                    "see docs/alerts.md for an example")]
    problems = [ConfigProblem(path, ".".join(d.path), d.line,
                              f"duplicate key (first at line {d.first_line})",
                              "keep one of them") for d in marks.duplicates]
    try:
        model = RuleFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.extend(translate(error, path, _locator(marks), root=RuleFile))
        return None, problems
    return (model, problems) if not problems else (None, problems)


def _locator(marks: YamlMarks):  # type: ignore[no-untyped-def]
    return lambda loc: (marks.line_of(loc), None)


def load_rule_files(entries: list[str | Path], base_dir: Path | None = None) -> list[LoadedRule]:
    """Every rule of every file; raises :class:`ConfigError` with all problems found
    (unreadable files, bad YAML, model errors, names used twice, unknown `unless` names)."""
    loaded, problems = check_rule_files(entries, base_dir)
    if problems:
        raise ConfigError(problems)
    return loaded


def check_rule_files(
    entries: list[str | Path], base_dir: Path | None = None
) -> tuple[list[LoadedRule], list[ConfigProblem]]:
    loaded: list[LoadedRule] = []
    problems: list[ConfigProblem] = []
    where: dict[str, Path] = {}
    for entry in entries:
        path = resolve_rule_path(entry, base_dir)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            hint = ("shipped presets: " + ", ".join(sorted(p.stem for p in
                                                           PRESET_DIR.glob("*.yaml")))
                    if str(entry).startswith(PRESET_PREFIX) else "check the path")
            problems.append(ConfigProblem(path, "", None,
                                          f"rule file cannot be read: {exc.strerror}", hint))
            continue
        model, found = parse_rule_file(path, text)
        problems.extend(found)
        if model is None:
            continue
        for rule in model.rules:
            if rule.name in where and where[rule.name] != path:
                problems.append(ConfigProblem(
                    path, "rules", None,
                    f"rule name {rule.name!r} is also used in {where[rule.name]}",
                    "rule names must be unique across all rule files"))
            where[rule.name] = path
            loaded.append(LoadedRule(rule, model, path))
    names = set(where)
    for item in loaded:
        for dep in item.rule.unless:
            if dep not in names:
                problems.append(ConfigProblem(
                    item.path, f"{item.rule.name}.unless", None,
                    f"`unless` names rule {dep!r}, which no loaded rule file defines",
                    "load the file that defines it, or fix the name"))
    return loaded, problems
