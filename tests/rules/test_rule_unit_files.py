"""Every rule unit-test file under rules/tests passes, and a wrong expectation fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from rules import presets
from rules.testing import expand_values, load_test_file, run_case, run_test_file

ROOT = Path(__file__).resolve().parents[2]
TEST_FILES = sorted((ROOT / "rules" / "tests").glob("*.yaml"))


def _cases() -> list[tuple[Path, str]]:
    return [(path, case.name) for path in TEST_FILES for case in load_test_file(path)[0].tests]


@pytest.mark.parametrize(("path", "name"), _cases(), ids=lambda v: getattr(v, "stem", v))
def test_rule_unit_case_passes(path: Path, name: str) -> None:
    spec, rules = load_test_file(path)
    case = next(c for c in spec.tests if c.name == name)
    result = run_case(spec, rules, case)
    assert result.passed, "\n".join(result.failures)


def test_every_preset_and_every_condition_kind_is_unit_tested() -> None:
    files, kinds = set(), set()
    for path in TEST_FILES:
        spec, rules = load_test_file(path)
        files.update(r.file.preset or r.path.stem for r in rules)
        tested = {t.rule for case in spec.tests for t in (case.transitions or [])}
        tested |= {a.rule for case in spec.tests for cp in case.alerts
                   for a in (cp.firing or []) + (cp.pending or [])}
        kinds.update(r.rule.kind for r in rules if r.rule.name in tested)
    assert set(presets.names()) <= files
    assert kinds == {"threshold", "rate", "refill", "frost", "gdd", "expr", "absent_for"}


def test_a_wrong_expectation_fails_with_what_happened(tmp_path: Path) -> None:
    text = (ROOT / "rules" / "tests" / "tomato.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "tomato.yaml"
    broken.write_text(text.replace("rule_files: [preset:common, preset:tomato]",
                                   "rule_files: [preset:common, preset:tomato]")
                      .replace("{at: 2h40m, rule: tomato.soil_dry, state: firing",
                               "{at: 2h30m, rule: tomato.soil_dry, state: firing"),
                      encoding="utf-8")
    results = run_test_file(broken)
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed] == [results[0].name]
    assert "got at 2h40m tomato.soil_dry firing" in "\n".join(failed[0].failures)
    assert main(["rules", "test", str(broken)]) == 1
    assert main(["rules", "test", *map(str, TEST_FILES)]) == 0


@pytest.mark.parametrize(("text", "values"), [
    ("1 2 3", [1, 2, 3]),
    ("30-1x3", [30, 29, 28, 27]),
    ("0+0.5x2 _ 7x1", [0, 0.5, 1, None, 7, 7]),
    ("_x2", [None, None, None]),
])
def test_series_notation_expands_like_promtool(text: str, values: list[float | None]) -> None:
    assert expand_values(text) == values
