"""`satoyama replay --format lpp-hex|rtl433|ttn|chirpstack` into a real SQLite store, read
back by export (LoRaWAN devices by DevEUI, Milesight replies counted as ignored).

The rtl_433 lines are as Debian's rtl_433 22.11 printed them for the shared corpus
(../shared/corpus/rtl433), copied here so the test runs without it.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from firmware_bridge.native import decode_native
from gateway.packet import Packet


def satoyama(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"satoyama {args} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def replay(fmt: str, src: Path, data: Path) -> dict[str, int]:
    out = satoyama("replay", "--format", fmt, str(src), "--data-dir", str(data), "--json")
    counts: dict[str, int] = json.loads(out.stdout)
    return counts


def export(data: Path) -> list[dict[str, str]]:
    out = satoyama("export", "--data-dir", str(data), "--format", "csv").stdout
    return list(csv.DictReader(io.StringIO(out)))


def test_replay_lpp_hex_stores_channels_and_counts_refusals(tmp_path: Path) -> None:
    src = tmp_path / "uplinks.lpp"
    src.write_text("\n".join([
        "lpp-1 03670110056700ff",  # Cayenne spec example: 27.2 °C on ch3, 25.5 °C on ch5
        "lpp-1 0167011001687F",  # 27.2 °C and 63.5 % on ch1: dew point derived
        "lpp-2 01ffff",  # unknown type
        "lpp-2 0167f",  # odd hex
        "lpp-3",  # no payload
        "lpp-2 0767ff64 extra",
    ]) + "\n")
    first = replay("lpp-hex", src, tmp_path)
    assert {k: v for k, v in first.items() if k == "stored" or k.startswith("rejected.")} == {
        "stored": 2, "rejected.unknown_reading_type": 1, "rejected.bad_hex": 1,
        "rejected.bad_lpp_line": 2}
    again = replay("lpp-hex", src, tmp_path)
    assert again.get("stored", 0) == 0 and again["duplicates"] == 2

    rows = export(tmp_path)
    by_sensor = {r["sensor"]: r for r in rows}
    assert {r["node"] for r in rows} == {"lpp-1"}
    assert sorted(by_sensor) == ["ch1", "ch3", "ch5"]
    assert float(by_sensor["ch3"]["temperature_c"]) == 27.2
    assert float(by_sensor["ch5"]["temperature_c"]) == 25.5
    assert float(by_sensor["ch1"]["humidity_pct"]) == 63.5
    assert by_sensor["ch1"]["dew_point_c"]
    assert {(r["format"], r["time_source"]) for r in rows} == {("lpp-hex", "replay")}


RTL433_LINES = [
    '{"time" : "2026-11-23 09:11:36", "model" : "AmbientWeather-WH31E", "id" : 195, '
    '"channel" : 1, "battery_ok" : 1, "temperature_C" : 12.200, "humidity" : 94, '
    '"data" : "bc0756a7ae", "mic" : "CRC"}',
    '{"time" : "2026-11-23 09:11:36", "model" : "Fineoffset-WH51", "id" : "006b58", '
    '"battery_ok" : 0.778, "battery_mV" : 1400, "moisture" : 36, "boost" : 3, '
    '"ad_raw" : 210, "mic" : "CRC"}',
    '{"time" : "@0.284576s", "model" : "SensibleLiving-Moisture", "house_id" : 2, '
    '"module_id" : 24621, "sensor_type" : 1, "sensor_count" : 1, "alarms" : 0, '
    '"sensor_value" : 1000, "battery_mV" : 2960, "mic" : "CRC"}',
    # -M time:iso:tz output: a zoned time is the node's time
    '{"time" : "2026-07-01T13:10:00+0900", "model" : "AmbientWeather-WH31E", "id" : 68, '
    '"channel" : 2, "battery_ok" : 1, "temperature_C" : 13.8, "humidity" : 57}',
    # an -M stats report, not a device event
    '{"time" : "2026-11-23 09:11:40", "enabled" : 190, "since" : "2026-11-23T09:11:36"}',
]


def test_replay_rtl433_stores_events_by_model_id_channel(tmp_path: Path) -> None:
    src = tmp_path / "rtl433.jsonl"
    src.write_text("\n".join(RTL433_LINES) + "\n")
    first = replay("rtl433", src, tmp_path)
    assert {k: v for k, v in first.items() if k == "stored" or k.startswith("rejected.")} == {
        "stored": 4, "rejected.schema": 1}
    again = replay("rtl433", src, tmp_path)
    assert again.get("stored", 0) == 0 and again["duplicates"] == 4

    rows = {r["node"]: r for r in export(tmp_path)}
    wh31_1 = rows["AmbientWeather-WH31E:195:ch1"]
    assert (float(wh31_1["temperature_c"]), float(wh31_1["humidity_pct"])) == (12.2, 94.0)
    assert wh31_1["dew_point_c"] and wh31_1["time_source"] == "replay"
    assert float(rows["Fineoffset-WH51:006b58"]["soil_moisture_pct"]) == 36.0
    wh31_2 = rows["AmbientWeather-WH31E:68:ch2"]
    assert (wh31_2["time"], wh31_2["time_source"]) == ("2026-07-01T04:10:00.000000000Z", "node")
    assert {r["format"] for r in rows.values()} == {"rtl433"}
    # The SensibleLiving probe sends only its battery: a device row, no reading row.
    assert "SensibleLiving-Moisture:2:24621" not in rows


def tts_line(device_id: str, dev_eui: str, f_cnt: int, **uplink: object) -> str:
    return json.dumps({"end_device_ids": {"device_id": device_id, "dev_eui": dev_eui},
                       "uplink_message": {"f_port": 85, "f_cnt": f_cnt,
                                          "received_at": "2026-07-01T04:10:00Z",
                                          "rx_metadata": [{"rssi": -35, "snr": 13.2}],
                                          **uplink}})


def test_replay_ttn_and_chirpstack_one_message_a_line_with_the_registry(
    tmp_path: Path,
) -> None:
    config = tmp_path / "satoyama.yaml"
    config.write_text(
        f"site: farm\ndata_dir: {tmp_path / 'data'}\n"
        "devices:\n"
        "  terrace-3:\n    plot: upper\n    ids: ['lorawan:1000000000000001']\n"
        "    codec: milesight-em500-smtc\n"
    )
    ttn = tmp_path / "ttn.jsonl"
    ttn.write_text("\n".join([
        # the registry names the node and its codec decodes the EM500-SMTC bytes
        tts_line("eui-1000000000000001", "1000000000000001", 10335,
                 frm_payload="AXVkA2cZAQRocwV/8AA="),
        # an unregistered device with the server's decoded payload
        tts_line("lse01-b", "a8404194a1875ff3", 2, decoded_payload={
            "Bat": "3.384 V", "water_SOIL": "21.02", "temp_SOIL": "18.5"}),
        tts_line("lse01-b", "a8404194a1875ff3", 3, frm_payload="zikA8QelCZtuKJA="),  # no codec
        '{"end_device_ids": {"device_id": "x"}, "join_accept": {}}',
        '{"end_device_ids": {truncated',
    ]) + "\n")
    out = satoyama("replay", "--format", "ttn", str(ttn), "-c", str(config), "--json")
    first = json.loads(out.stdout)
    assert {k: v for k, v in first.items() if k.split(".")[0] in (
        "stored", "rejected", "ignored")} == {
        "stored": 2, "rejected.no_codec": 1, "rejected.bad_json": 1, "ignored.not_uplink": 1}
    again = json.loads(satoyama("replay", "--format", "ttn", str(ttn), "-c", str(config),
                                "--json").stdout)
    assert again.get("stored", 0) == 0 and again["duplicates"] == 2

    chirpstack = tmp_path / "chirpstack.jsonl"
    chirpstack.write_text("\n".join(json.dumps(event) for event in [
        {"time": "2026-07-01T04:20:00+00:00", "fCnt": 10335,
         "deviceInfo": {"devEui": "1000000000000001", "deviceName": "EM500 one"},
         "fPort": 85, "data": "AXVkA2cZAQRocwV/8AA=", "rxInfo": [{"rssi": -80, "snr": 2}]},
        {"deviceInfo": {"devEui": "1000000000000001"}, "batteryLevel": 88.3, "margin": 10},
    ]) + "\n")
    out = satoyama("replay", "--format", "chirpstack", str(chirpstack), "-c", str(config),
                   "--json")
    counts = json.loads(out.stdout)
    assert (counts["stored"], counts["ignored.not_uplink"]) == (1, 1)

    out = satoyama("export", "-c", str(config), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    terrace = [r for r in rows if r["node"] == "terrace-3"]
    assert [(r["format"], r["plot"], r["time"], float(r["soil_moisture_pct"]),
             float(r["soil_ec_ms_cm"])) for r in terrace] == [
        ("ttn", "upper", "2026-07-01T04:10:00.000000000Z", 57.5, 0.24),
        ("chirpstack", "upper", "2026-07-01T04:20:00.000000000Z", 57.5, 0.24)]
    lse = [r for r in rows if r["node"] == "eui-a8404194a1875ff3"]  # by DevEUI, not name
    assert [(float(r["soil_moisture_pct"]), float(r["soil_temperature_c"])) for r in lse] == [
        (21.02, 18.5)]


def test_milesight_replies_and_device_information_count_as_ignored_not_rejected(
    tmp_path: Path,
) -> None:
    """An EM500-SMTC's reply to a downlink command (fe 03 b0 04: report interval 1200 s)
    and its device information after a join carry no readings: counted
    ``ignored.no_readings``, neither stored nor quarantined; its readings are stored."""
    config = tmp_path / "satoyama.yaml"
    config.write_text(
        f"site: farm\ndata_dir: {tmp_path / 'data'}\n"
        "devices:\n  terrace-3:\n    ids: ['lorawan:1000000000000001']\n"
        "    codec: milesight-em500-smtc\n")
    ttn = tmp_path / "ttn.jsonl"
    ttn.write_text("\n".join([
        tts_line("e", "1000000000000001", 1, frm_payload="/wv//wEB/w8A"),  # ff0bff ff0101 ff0f00
        tts_line("e", "1000000000000001", 2, frm_payload="AXVkA2cZAQRocwV/8AA="),
        tts_line("e", "1000000000000001", 3, frm_payload="/gOwBA=="),  # fe03b004
    ]) + "\n")
    counts = json.loads(satoyama("replay", "--format", "ttn", str(ttn), "-c", str(config),
                                 "--json").stdout)
    assert {k: v for k, v in counts.items() if k.split(".")[0] in (
        "stored", "rejected", "ignored")} == {"stored": 1, "ignored.no_readings": 2}
    status = json.loads(satoyama("status", "-c", str(config), "--json").stdout)
    assert status["store"]["quarantined"] == 0


def test_replay_chirpstack_takes_the_codec_of_the_configured_topic(tmp_path: Path) -> None:
    """A codec set on a `sources.mqtt.topics` entry (as in examples/farm-lorawan.yaml)
    decodes replayed messages as it decodes live ones; with several, `--topic` says which
    subscription the messages came on."""
    event = json.dumps({
        "time": "2026-07-01T04:20:00+00:00", "fCnt": 7,
        "deviceInfo": {"devEui": "1000000000000001", "deviceName": "em500"},
        "fPort": 85, "data": "AXVkA2cZAQRocwV/8AA=", "rxInfo": [{"rssi": -80, "snr": 2}]})
    src = tmp_path / "events.jsonl"
    src.write_text(event + "\n")
    one = tmp_path / "one.yaml"
    one.write_text(
        f"site: farm\ndata_dir: {tmp_path / 'one'}\n"
        "sources:\n  mqtt:\n    url: mqtt://127.0.0.1:1\n    format: chirpstack\n"
        "    topics:\n      - topic: application/+/device/+/event/up\n"
        "        codec: milesight-em500-smtc\n")
    counts = json.loads(satoyama("replay", "--format", "chirpstack", str(src), "-c", str(one),
                                 "--json").stdout)
    assert counts.get("stored") == 1 and "rejected.no_codec" not in counts

    several = tmp_path / "several.yaml"
    several.write_text(
        f"site: farm\ndata_dir: {tmp_path / 'several'}\n"
        "sources:\n  mqtt:\n    url: mqtt://127.0.0.1:1\n    format: chirpstack\n"
        "    topics:\n      - topic: application/soil/device/+/event/up\n"
        "        codec: milesight-em500-smtc\n"
        "      - topic: application/lse/device/+/event/up\n        codec: dragino-lse01\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "replay", "--format",
                           "chirpstack", str(src), "-c", str(several), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout)["rejected.no_codec"] == 1
    assert "give --topic" in proc.stderr
    counts = json.loads(satoyama(
        "replay", "--format", "chirpstack", str(src), "-c", str(several), "--json",
        "--topic", "application/soil/device/1000000000000001/event/up").stdout)
    assert counts.get("stored") == 1


def test_replay_rtl433_names_registered_devices_and_prints_ignored_counts(
    tmp_path: Path,
) -> None:
    config = tmp_path / "satoyama.yaml"
    config.write_text(
        f"site: farm\ndata_dir: {tmp_path / 'data'}\n"
        "devices:\n  bed-wh51:\n    plot: beds\n    ids: ['rtl433:Fineoffset-WH51/006b58']\n"
        "  wh31-ch1:\n    ids: ['rtl433:AmbientWeather-WH31E/195/1']\n")
    src = tmp_path / "rtl433.jsonl"
    src.write_text("\n".join(RTL433_LINES[:3]) + "\n")
    counts = json.loads(satoyama("replay", "--format", "rtl433", str(src), "-c", str(config),
                                 "--json").stdout)
    assert counts["stored"] == 3
    out = satoyama("export", "-c", str(config), "--format", "csv").stdout
    nodes = {(r["node"], r["plot"]) for r in csv.DictReader(io.StringIO(out))}
    assert nodes == {("bed-wh51", "beds"), ("wh31-ch1", "unassigned")}

    events = tmp_path / "chirpstack.jsonl"
    events.write_text('{"deviceInfo": {"devEui": "0101010101010101"}, "batteryLevel": 9}\n')
    text = satoyama("replay", "--format", "chirpstack", str(events), "-c", str(config)).stdout
    assert "stored 0" in text and "ignored not_uplink: 1" in text


def test_a_native_message_replays_as_it_was_taken_live(tmp_path: Path) -> None:
    """A recorded MQTT message of 20 kB (within the native format's 64 KiB) is decided by
    the native decoder in a replay too, as over MQTT; a line over 64 KiB is refused."""
    readings = {"temperature_c": 21.5, **{f"probe_{i:04d}": 1.0 for i in range(1500)}}
    big = json.dumps({"node": "n1", "seq": 1, "ts": "2026-07-01T04:10:00Z",
                      "readings": readings}, separators=(",", ":"))
    too_big = json.dumps({"node": "n2", "seq": 1, "readings": {
        "temperature_c": 21.5, **{f"probe_{i:05d}": 1.0 for i in range(5000)}}})
    assert 16_000 < len(big) < 65_536 < len(too_big)
    assert isinstance(decode_native(big.encode()), Packet)  # as the MQTT source decodes it
    src = tmp_path / "mqtt.jsonl"
    src.write_text(big + "\n" + too_big + "\n")
    counts = replay("native", src, tmp_path / "data")
    assert counts["stored"] == 1
    assert counts["rejected.line_too_long"] == 1
    assert [r["temperature_c"] for r in export(tmp_path / "data")] == ["21.5"]
