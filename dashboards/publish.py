"""Push the dashboards to a running Grafana over its HTTP API (through ``grafana-client``).

Idempotent: the folder and the datasource are created only when missing (looked up by
their stable uids), and dashboards are saved by uid with ``overwrite: true``, so running
it again updates in place and never makes copies.

Grafana errors are translated here, at one boundary, into :class:`PublishError`
subclasses that carry the command's exit code and a message naming what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from dashboards.common import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID

PROVISIONED_DATASOURCE: Final = (
    Path(__file__).parent / "provisioning" / "datasources" / "influxdb.yaml"
)
DATASOURCE_NAME: Final = "Satoyama InfluxDB"
TIMEOUT_S: Final = 10.0

EXIT_REFUSED: Final = 1  # Grafana answered but did not do it (bad input, conflict, 5xx)
EXIT_AUTH: Final = 3  # 401/403: the token is wrong or lacks permission
EXIT_NETWORK: Final = 4  # no answer: refused, unreachable, timed out


class PublishError(Exception):
    exit_code = EXIT_REFUSED


class AuthError(PublishError):
    exit_code = EXIT_AUTH


class NetworkError(PublishError):
    exit_code = EXIT_NETWORK


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """Where the datasource publish creates (only when Grafana lacks it) points to."""

    url: str
    database: str
    token: str | None = None


def datasource_body(target: InfluxTarget) -> dict[str, Any]:
    """The datasource from the provisioning file, pointed at ``target``.

    One definition for both ways in: the compose stack provisions the YAML; publish
    creates the same datasource (same uid, type and InfluxQL settings) over the API.
    """
    doc = yaml.safe_load(PROVISIONED_DATASOURCE.read_text(encoding="utf-8"))
    spec = next(ds for ds in doc["datasources"] if ds["uid"] == DATASOURCE_UID)
    json_data = dict(spec["jsonData"])
    json_data["dbName"] = target.database
    body: dict[str, Any] = {
        "name": DATASOURCE_NAME,
        "uid": spec["uid"],
        "type": spec["type"],
        "access": spec["access"],
        "url": target.url,
        "isDefault": False,  # someone else's Grafana: do not change its default
        "jsonData": json_data,
    }
    if target.token:
        body["secureJsonData"] = {"httpHeaderValue1": f"Token {target.token}"}
    else:
        json_data.pop("httpHeaderName1", None)
    return body


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise PublishError(f"no dashboard JSON in {directory}: run `satoyama dashboards build`")
    out = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not data.get("uid"):
            raise PublishError(f"{path}: not a dashboard with a uid")
        out.append(data)
    return out


@contextmanager
def grafana_errors(url: str, doing: str) -> Iterator[None]:
    """Translate grafana-client and network errors into PublishError subclasses."""
    from grafana_client.client import (
        GrafanaClientError,
        GrafanaException,
        GrafanaTimeoutError,
        GrafanaUnauthorizedError,
    )

    try:
        yield
    except GrafanaUnauthorizedError as e:
        raise AuthError(f"{url} refused the token while {doing} (HTTP 401): check --token, "
                        "--token-file or GRAFANA_TOKEN (a service account token)") from e
    except GrafanaTimeoutError as e:
        raise NetworkError(f"{url} did not answer in time while {doing}: {e}") from e
    except GrafanaClientError as e:
        if e.status_code == 403:
            raise AuthError(
                f"{url} denied {doing} (HTTP 403): the token's service account needs the "
                "Editor role for dashboards, Admin to create the datasource") from e
        raise PublishError(f"{url} refused {doing} (HTTP {e.status_code}): "
                           f"{_message(e.response)}") from e
    except GrafanaException as e:
        if e.status_code:
            raise PublishError(f"{url} failed {doing} (HTTP {e.status_code}): "
                               f"{_message(e.response)}") from e
        raise NetworkError(f"cannot reach Grafana at {url} while {doing}: {e}") from e
    except OSError as e:  # niquests' ConnectionError is an OSError; so are DNS failures
        raise NetworkError(f"cannot reach Grafana at {url} while {doing}: {e}") from e


def _message(response: object) -> str:
    if isinstance(response, dict) and "message" in response:
        return str(response["message"])
    return str(response)[:300]


def publish(url: str, token: str, directory: Path, influx: InfluxTarget | None,
            *, say: Callable[[str], None] = print) -> int:
    """Create the folder and datasource if missing, then upload every dashboard.

    Returns the number of dashboards saved; raises :class:`PublishError`.
    """
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError

    dashboards = load_dashboards(directory)
    api = GrafanaApi.from_url(url, credential=token, timeout=TIMEOUT_S)

    def create_datasource() -> str:
        if influx is None:
            raise PublishError(
                f"Grafana has no datasource {DATASOURCE_UID!r}: pass --influxdb-url and "
                "--influxdb-database (and --influxdb-token for InfluxDB 2.x/3.x) so "
                "publish can create it")
        api.datasource.create_datasource(datasource_body(influx))
        return f"created ({influx.url}, database {influx.database})"

    def create_folder() -> str:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return "created"

    for what, uid, get, create in (
        ("folder", FOLDER_UID, api.folder.get_folder, create_folder),
        ("datasource", DATASOURCE_UID, api.datasource.get_datasource_by_uid, create_datasource),
    ):
        with grafana_errors(url, f"looking up {what} {uid!r}"):
            try:
                get(uid)
                say(f"{what} {uid}: exists")
            except GrafanaClientError as e:
                if e.status_code != 404:
                    raise
                say(f"{what} {uid}: {create()}")

    for data in dashboards:
        body = dict(data)
        body.pop("id", None)  # Grafana matches by uid; an id from elsewhere would clash
        with grafana_errors(url, f"saving dashboard {body['uid']!r}"):
            result = api.dashboard.update_dashboard({
                "dashboard": body, "folderUid": FOLDER_UID, "overwrite": True,
                "message": "satoyama dashboards publish",
            })
        version = result.get("version") if isinstance(result, dict) else None
        say(f"dashboard {body['uid']}: saved (version {version}) {body.get('title', '')}")
    return len(dashboards)
