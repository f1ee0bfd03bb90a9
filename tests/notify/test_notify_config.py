"""The notifications section: errors check-config reports, secrets kept out of them."""

from __future__ import annotations

from pathlib import Path

from gateway.config import check_config, load_settings

SECRET = "S3CRET-TOKEN-abcdef"


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text("site: farm\n" + text)
    return [str(p) for p in check_config(path, env={})]


def test_a_url_apprise_cannot_use_is_located_and_its_secret_not_shown(tmp_path: Path) -> None:
    problems = _problems(tmp_path, f"""\
notifications:
  recipients:
    grower:
      urls:
        - json://127.0.0.1:9/hook
        - nosuchservice://{SECRET}@host
""")
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'c.yaml'}:5: notifications.recipients.grower.urls:")
    assert "urls[1]: apprise cannot use this nosuchservice:// URL" in problems[0]
    assert SECRET not in problems[0]


def test_a_token_apprise_refuses_is_an_error_without_the_token(tmp_path: Path) -> None:
    # A Telegram URL needs a bot token of the form 123456:ABC...; apprise refuses this one.
    problems = _problems(tmp_path, f"""\
notifications:
  recipients:
    grower: {{urls: ["tgram://{SECRET}"]}}
""")
    assert len(problems) == 1 and "tgram://" in problems[0]
    assert SECRET not in problems[0]


def test_a_line_url_without_a_user_id_names_nobody(tmp_path: Path) -> None:
    problems = _problems(tmp_path, f"""\
notifications:
  recipients:
    grower: {{urls: ["line://{SECRET}"]}}
""")
    assert len(problems) == 1 and "line:// URL names nobody to send to" in problems[0]
    assert SECRET not in problems[0]


def test_route_to_an_unknown_recipient_names_the_close_one(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
notifications:
  recipients:
    grower: {urls: ["json://127.0.0.1:9/hook"]}
  routes:
    - {match: {severity: [critical]}, recipients: [grover]}
""")
    assert len(problems) == 1
    assert "route recipient 'grover' is not in notifications.recipients" in problems[0]
    assert "did you mean 'grower'?" in problems[0]


def test_quiet_hours_and_unknown_keys_and_time_zone(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
notifications:
  recipients:
    grower:
      urls: ["json://127.0.0.1:9/hook"]
      timezone: Asia/Tokio
      quiet_hours: {start: "21:00", end: "21:00"}
      langauge: en
""")
    text = "\n".join(problems)
    assert "'Asia/Tokio' is not a known time zone" in text and "Asia/Tokyo" in text
    assert "quiet_hours.end: start and end are equal" in text
    assert "unknown key 'langauge'" in text and "did you mean 'language'" in text


def test_mqtt_alerts_switched_on_without_a_broker(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "sinks:\n  mqtt_alerts: {enabled: true}\n")
    assert len(problems) == 1 and "no sources.mqtt broker" in problems[0]
    # The default (on) without a broker is no error: there is nothing to publish to.
    assert _problems(tmp_path, "") == []


def test_urls_from_the_environment_are_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("site: farm\nnotifications:\n  recipients:\n    grower: {urls: []}\n")
    env = {"SATOYAMA_NOTIFICATIONS__RECIPIENTS__GROWER__URLS":
           f'["json://127.0.0.1:9/{SECRET}"]'}
    settings = load_settings(path, env=env)
    urls = settings.notifications.recipients["grower"].urls
    assert [u.get_secret_value() for u in urls] == [f"json://127.0.0.1:9/{SECRET}"]
    assert SECRET not in settings.model_dump_json() and SECRET not in repr(settings)
