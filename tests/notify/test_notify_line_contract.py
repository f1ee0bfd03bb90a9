"""LINE Messaging API push, as apprise's LINE plugin sends it: a recorded contract.

LINE's servers cannot be reached from the test machine, so this is not a delivery test:
the plugin's endpoint (its ``notify_url``, ``https://api.line.me/v2/bot/message/push``) is
pointed at a local HTTP receiver, and the request it makes is checked against LINE's
documented push-message API (https://developers.line.biz/en/reference/messaging-api/
#send-push-message): ``POST /v2/bot/message/push``, ``Authorization: Bearer <channel
access token>``, a JSON body ``{"to": <user, group or room id>, "messages": [{"type":
"text", "text": ...}]}`` with at most 5,000 characters of text. If a newer apprise changed
that request, this test says so; whether LINE still accepts it is only known in the field.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.receivers import Webhook

from rules.notify.apprise_urls import AppriseTarget

TOKEN = "CHANNEL-ACCESS-TOKEN-abc123"
USER = "U0123456789abcdef0123456789abcdef"


@pytest.fixture
def line_api() -> Iterator[Webhook]:
    server = Webhook().start()
    yield server
    server.stop()


def test_line_push_request(line_api: Webhook) -> None:
    target = AppriseTarget(f"line://{TOKEN}/{USER}")
    for plugin in target._apprise:  # the one plugin of this URL
        plugin.notify_url = line_api.url("http", "/v2/bot/message/push")
    title = "[注意] kamiyama: p3: 土が乾いています（他4件）"
    body = "発生中（5件）:\n• 2026-07-01 11:00 JST  p3: 土が乾いています"
    target.send(title, body, "warning")

    [request] = line_api.requests
    assert request.path == "/v2/bot/message/push"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    payload = request.json()
    assert payload["to"] == USER
    [message] = payload["messages"]
    assert message["type"] == "text"
    # LINE has no title: apprise puts it on the first line of the text.
    assert message["text"].splitlines() == [title, *body.splitlines()]
