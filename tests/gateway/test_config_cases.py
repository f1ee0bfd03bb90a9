"""Table-driven `check-config` cases: one folder per case, no code per case.

    tests/gateway/cases/config/<case>/
        config.yaml    the file under test (plus any rule or secret files it refers to)
        expected.txt   one expected problem a line: ``key | line | message contains [| hint
                       contains]`` (a problem inside a rule file is located in that file:
                       its key and line are the rule file's); line is a number, ``-`` (no
                       line) or ``env:NAME`` (the problem is reported against that
                       environment variable); ``#`` starts a comment. A key written
                       ``warning: KEY`` expects a warning (the config is still usable),
                       any other an error. No lines: the config must be clean.
        env.txt        optional ``NAME=value`` lines: the environment for the case.

Every problem reported must be expected and every expected problem reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import ConfigProblem, check_config

CASES = Path(__file__).parent / "cases" / "config"


@dataclass(frozen=True)
class Expected:
    key: str
    line: int | None
    env_var: str | None
    message: str
    hint: str
    warning: bool = False

    def matches(self, problem: ConfigProblem) -> bool:
        return (
            problem.warning == self.warning
            and problem.key == self.key
            and problem.line == self.line
            and problem.env_var == self.env_var
            and self.message in problem.message
            and self.hint in problem.hint
        )

    def __str__(self) -> str:
        where = f"env:{self.env_var}" if self.env_var else self.line
        key = f"warning: {self.key}" if self.warning else self.key
        return f"{key} | {where} | {self.message} | {self.hint}"


def _expected(case: Path) -> list[Expected]:
    out = []
    for raw in (case / "expected.txt").read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in raw.split("|")]
        key, where, message, *rest = cells
        warning = key.startswith("warning:")
        key = key.removeprefix("warning:").strip()
        line = env_var = None
        if where.startswith("env:"):
            env_var = where.removeprefix("env:")
        elif where != "-":
            line = int(where)
        out.append(Expected(key, line, env_var, message, rest[0] if rest else "", warning))
    return out


def _env(case: Path) -> dict[str, str]:
    path = case / "env.txt"
    if not path.exists():
        return {}
    env = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            name, _, value = raw.partition("=")
            env[name] = value
    return env


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_config_case(case: str) -> None:
    folder = CASES / case
    config = folder / "config.yaml"
    problems = check_config(config, env=_env(folder))
    expected = _expected(folder)

    unmatched = list(problems)
    missing = []
    for exp in expected:
        hit = next((p for p in unmatched if exp.matches(p)), None)
        if hit is None:
            missing.append(exp)
        else:
            unmatched.remove(hit)
    report = "\n".join(
        ["reported:", *(f"  {p!s}  [key={p.key!r} line={p.line}]" for p in problems)]
    )
    assert not missing, (
        "expected but not reported:\n" + "\n".join(map(str, missing)) + "\n" + report
    )
    assert not unmatched, "reported but not expected:\n" + "\n".join(map(str, unmatched))
    for problem in problems:
        # a problem inside a rule file names that file (and its line), not the config
        assert problem.file == config or folder in problem.file.parents
        assert problem.message
