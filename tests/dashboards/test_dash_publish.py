"""`satoyama dashboards publish` against a recorded-contract Grafana HTTP API.

This is a recorded-contract test: Grafana itself cannot run on this machine, so a small
HTTP server started here (on a free loopback port) answers the way Grafana's documented
HTTP API does (grafana.com/docs/grafana/latest/developers/http_api: folder, data source
and dashboard APIs) and refuses requests that break that contract:

* every request carries ``Authorization: Bearer <service account token>``; a wrong token
  gets 401 ``{"message": "Unauthorized"}``, a viewer token 403 on writes;
* ``GET /api/folders/:uid`` -> 200 folder or 404; ``POST /api/folders`` with ``{uid, title}``
  -> 200, or 409 when the uid exists;
* ``GET /api/datasources/uid/:uid`` -> 200 or 404; ``POST /api/datasources`` needs
  ``name``, ``type``, ``access`` and ``url`` -> 200 ``{datasource, id, message, name}``, or
  409 when the name exists;
* ``POST /api/dashboards/db`` with ``{dashboard, folderUid, overwrite}``: the dashboard
  needs a ``title``; a uid that exists without ``overwrite`` is 412 ``name-exists``; 200
  gives ``{id, uid, url, status: success, version, slug}``; an unknown ``folderUid`` is 400.

Anything else is recorded as unexpected and fails the test.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from servers.process import free_port

from dashboards.build import JSON_DIR
from dashboards.common import DATASOURCE_UID, FOLDER_UID
from gateway.cli import main

TOKEN = "glsa_editor_token"
VIEWER_TOKEN = "glsa_viewer_token"


@dataclass
class GrafanaState:
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> saved
    requests: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    next_id: int = 1


class GrafanaContract(BaseHTTPRequestHandler):
    state: GrafanaState

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self, write: bool) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth not in (f"Bearer {TOKEN}", f"Bearer {VIEWER_TOKEN}"):
            self._reply(401, {"message": "Unauthorized"})
            return False
        if write and auth == f"Bearer {VIEWER_TOKEN}":
            self._reply(403, {"message": "You'll need additional permissions to perform "
                                         "this action. Permissions needed: any of "
                                         "dashboards:write"})
            return False
        return True

    def _json(self) -> dict[str, Any] | None:
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self.state.unexpected.append(f"{self.path}: Content-Type "
                                         f"{self.headers.get('Content-Type')}")
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._reply(400, {"message": "bad request data"})
            return None
        return body

    def do_GET(self) -> None:
        st = self.state
        st.requests.append(("GET", self.path))
        if not self._authorised(write=False):
            return
        if m := re.fullmatch(r"/api/folders/([\w-]+)", self.path):
            folder = st.folders.get(m.group(1))
            self._reply(200, folder) if folder else self._reply(
                404, {"message": "folder not found"})
        elif m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", self.path):
            ds = st.datasources.get(m.group(1))
            self._reply(200, ds) if ds else self._reply(
                404, {"message": "Data source not found"})
        else:
            st.unexpected.append(f"GET {self.path}")
            self._reply(404, {"message": "Not found"})

    def do_POST(self) -> None:
        st = self.state
        st.requests.append(("POST", self.path))
        if not self._authorised(write=True):
            return
        body = self._json()
        if body is None:
            return
        if self.path == "/api/folders":
            uid, title = body.get("uid"), body.get("title")
            if not uid or not title:
                st.unexpected.append(f"folder without uid/title: {body}")
                self._reply(400, {"message": "folder title cannot be empty"})
            elif uid in st.folders:
                self._reply(409, {"message": "a folder with the same uid already exists"})
            else:
                st.folders[uid] = {"id": self._id(), "uid": uid, "title": title}
                self._reply(200, st.folders[uid])
        elif self.path == "/api/datasources":
            missing = [k for k in ("name", "type", "access", "url") if not body.get(k)]
            if missing:
                st.unexpected.append(f"datasource without {missing}: {body}")
                self._reply(400, {"message": f"Required: {missing}"})
            elif any(d["name"] == body["name"] for d in st.datasources.values()):
                self._reply(409, {"message": "data source with the same name already exists"})
            else:
                uid = body.get("uid") or f"auto{st.next_id}"
                ds = {**body, "id": self._id(), "uid": uid}
                st.datasources[uid] = ds
                self._reply(200, {"datasource": ds, "id": ds["id"], "message":
                                  "Datasource added", "name": body["name"]})
        elif self.path == "/api/dashboards/db":
            self._save_dashboard(body)
        else:
            st.unexpected.append(f"POST {self.path}")
            self._reply(404, {"message": "Not found"})

    def _save_dashboard(self, body: dict[str, Any]) -> None:
        st = self.state
        dash, folder = body.get("dashboard"), body.get("folderUid")
        if set(body) - {"dashboard", "folderUid", "folderId", "overwrite", "message"}:
            st.unexpected.append(f"dashboard request keys {sorted(body)}")
        if not isinstance(dash, dict) or not dash.get("title"):
            self._reply(400, {"message": "Dashboard title cannot be empty"})
            return
        if folder not in st.folders:
            self._reply(400, {"message": "folder not found"})
            return
        uid = dash.get("uid")
        old = st.dashboards.get(uid)
        if old and not body.get("overwrite"):
            self._reply(412, {"message": "A dashboard with the same uid already exists",
                              "status": "name-exists"})
            return
        version = old["version"] + 1 if old else 1
        saved = {"dashboard": dash, "folderUid": folder, "version": version,
                 "id": old["id"] if old else self._id()}
        st.dashboards[uid] = saved
        slug = re.sub(r"\W+", "-", dash["title"].lower()).strip("-")
        self._reply(200, {"id": saved["id"], "uid": uid, "url": f"/d/{uid}/{slug}",
                          "status": "success", "version": version, "slug": slug})

    def _id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    state = GrafanaState()
    handler = type("Handler", (GrafanaContract,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        assert state.unexpected == []


INFLUX = ["--influxdb-url", "http://influxdb:8086", "--influxdb-database", "satoyama",
          "--influxdb-token", "influx-secret"]


def publish(url: str, *extra: str, token: str | None = TOKEN) -> int:
    args = ["dashboards", "publish", "--url", url]
    if token is not None:
        args += ["--token", token]
    return main([*args, *extra])


def test_first_publish_creates_folder_datasource_and_every_dashboard(
        grafana: tuple[str, GrafanaState], capsys: pytest.CaptureFixture[str]) -> None:
    url, st = grafana
    assert publish(url, *INFLUX) == 0
    assert list(st.folders) == [FOLDER_UID]
    ds = st.datasources[DATASOURCE_UID]
    assert ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["url"] == "http://influxdb:8086"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == "satoyama"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    committed = {json.loads(p.read_text())["uid"]: json.loads(p.read_text())
                 for p in JSON_DIR.glob("*.json")}
    assert set(st.dashboards) == set(committed)
    for uid, saved in st.dashboards.items():
        assert saved["folderUid"] == FOLDER_UID
        assert saved["dashboard"]["panels"] == committed[uid]["panels"]
    out = capsys.readouterr()
    assert "folder satoyama: created" in out.out
    assert f"{len(committed)} dashboards published" in out.out
    assert TOKEN not in out.out + out.err and "influx-secret" not in out.out + out.err


def test_second_publish_updates_in_place_and_creates_nothing(
        grafana: tuple[str, GrafanaState]) -> None:
    url, st = grafana
    assert publish(url, *INFLUX) == 0
    ids = {uid: d["id"] for uid, d in st.dashboards.items()}
    st.requests.clear()
    assert publish(url, *INFLUX) == 0
    assert ("POST", "/api/folders") not in st.requests
    assert ("POST", "/api/datasources") not in st.requests
    assert len(st.folders) == 1 and len(st.datasources) == 1
    assert {uid: d["id"] for uid, d in st.dashboards.items()} == ids
    assert {d["version"] for d in st.dashboards.values()} == {2}


def test_existing_datasource_is_used_without_influxdb_options(
        grafana: tuple[str, GrafanaState]) -> None:
    url, st = grafana
    st.datasources[DATASOURCE_UID] = {"uid": DATASOURCE_UID, "name": "InfluxDB", "id": 1,
                                      "type": "influxdb"}
    assert publish(url) == 0
    assert ("POST", "/api/datasources") not in st.requests
    assert len(st.dashboards) == len(list(JSON_DIR.glob("*.json")))


def test_missing_datasource_without_influxdb_options_is_explained(
        grafana: tuple[str, GrafanaState], capsys: pytest.CaptureFixture[str]) -> None:
    url, st = grafana
    assert publish(url) == 1
    assert "--influxdb-url" in capsys.readouterr().err
    assert st.dashboards == {}


def test_wrong_token_is_an_auth_error(grafana: tuple[str, GrafanaState],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    url, st = grafana
    assert publish(url, *INFLUX, token="glsa_wrong") == 3
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "--token" in err and "glsa_wrong" not in err
    assert st.folders == {} and st.dashboards == {}


def test_token_without_write_permission_is_an_auth_error(
        grafana: tuple[str, GrafanaState], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = grafana
    assert publish(url, *INFLUX, token=VIEWER_TOKEN) == 3
    assert "HTTP 403" in capsys.readouterr().err


def test_connection_refused_is_a_network_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert publish(url, *INFLUX) == 4
    err = capsys.readouterr().err
    assert "cannot reach Grafana" in err and url in err


def test_token_from_environment_or_file(grafana: tuple[str, GrafanaState], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url, st = grafana
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert publish(url, *INFLUX, token=None) == 0
    monkeypatch.delenv("GRAFANA_TOKEN")
    token_file = tmp_path / "grafana-token"
    token_file.write_text(TOKEN + "\n")
    assert publish(url, "--token-file", str(token_file), token=None) == 0
    assert {d["version"] for d in st.dashboards.values()} == {2}


def test_missing_url_or_token_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert publish("http://127.0.0.1:1", token=None) == 2
    assert "token is required" in capsys.readouterr().err
