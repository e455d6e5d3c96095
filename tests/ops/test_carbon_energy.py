"""Carbon-intensity parsing (both services' shapes, file and HTTP) and energy accounting."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from adapters.carbon import (
    CarbonDataError,
    CarbonFeedConfig,
    fetch_carbon,
    load_carbon,
    load_carbon_file,
    parse_carbon,
)
from adapters.energy import EnergyConfig, EnergyMeter, EnergySample, read_rapl_uj

S = 1_000_000_000
H = 3600 * S
T0 = 1_717_372_800 * S  # 2024-06-03T00:00:00Z


def test_both_bundled_samples_parse_to_the_same_series(carbon_dir: Path) -> None:
    em = load_carbon_file(carbon_dir / "electricitymaps-history-sample.json")
    ca = load_carbon_file(carbon_dir / "carbon-aware-emissions-sample.json")
    assert len(em) == len(ca) == 24
    assert [p.g_per_kwh for p in em.points] == [p.g_per_kwh for p in ca.points]
    assert [p.ts_start for p in em.points] == [T0 + h * H for h in range(24)]
    assert all(p.duration_ns == H for p in em.points + ca.points)
    assert em.points[0].source == "electricity_maps.history" and ca.points[0].location == "eastus"
    assert em.intensity_at(T0 + 18 * H + 5 * S) == 495.9
    assert em.intensity_at(T0 - 1) is None  # before the series
    assert em.intensity_at(T0 + 24 * H + 7 * H) is None  # past the end + max age (6 h)
    assert em.min_ahead(T0 + 6 * H, 4 * H) == 165.2  # the solar dip at 10:00
    assert em.min_ahead(T0 + 30 * H, H) is None


def test_time_of_day_alignment_replays_the_profile_on_any_date(carbon_dir: Path) -> None:
    cfg = CarbonFeedConfig(path="x", align="time_of_day")
    series = load_carbon_file(carbon_dir / "electricitymaps-history-sample.json", cfg)
    t_2013 = 1_378_231_200 * S  # 2013-09-03T18:00:00Z
    assert series.intensity_at(t_2013) == 495.9
    assert series.intensity_at(t_2013 + 16 * H) == 165.2  # 10:00 the next day


def test_carbon_aware_forecast_and_electricity_maps_latest_and_forecast() -> None:
    forecast = [
        {
            "generatedAt": "2024-06-03T00:00:00Z",
            "location": "westus",
            "forecastData": [
                {
                    "location": "westus",
                    "timestamp": "2024-06-03T00:05:00+00:00",
                    "duration": 5,
                    "value": 310.5,
                },
                {
                    "location": "westus",
                    "timestamp": "2024-06-03T00:00:00+00:00",
                    "duration": 5,
                    "value": 300.0,
                },
            ],
        }
    ]
    s = parse_carbon(forecast)
    assert [p.g_per_kwh for p in s.points] == [300.0, 310.5]
    assert s.points[0].duration_ns == 5 * 60 * S and s.points[0].source == "carbon_aware.forecast"
    latest = {
        "zone": "DE",
        "carbonIntensity": 302,
        "datetime": "2019-05-21T00:00:00.000Z",
        "isEstimated": False,
    }
    one = parse_carbon(latest)
    assert one.points[0].g_per_kwh == 302.0 and one.points[0].location == "DE"
    assert one.points[0].duration_ns == H  # the last point lasts an hour
    em_fc = {
        "zone": "FR",
        "forecast": [
            {"carbonIntensity": 50, "datetime": "2024-01-01T01:00:00Z"},
            {"carbonIntensity": 60, "datetime": "2024-01-01T00:00:00Z"},
        ],
    }
    fc = parse_carbon(em_fc, "electricity_maps")
    assert [p.g_per_kwh for p in fc.points] == [60.0, 50.0] and fc.points[0].duration_ns == H
    spans = parse_carbon([{"location": "x", "time": 1_717_372_800, "rating": 1, "duration": "1.02:00:30.5"}])
    assert spans.points[0].duration_ns == (26 * 3600 + 30) * S + S // 2
    assert spans.points[0].ts_start == T0


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"foo": 1}, "unrecognised"),
        ([{"location": "a", "time": "yesterday", "rating": 3}], r"\[0\]\.time: bad ISO-8601"),
        (
            [{"location": "a", "time": "2024-01-01T00:00:00Z", "rating": "high"}],
            r"\[0\]\.rating: expected a number",
        ),
        ({"zone": "DE", "history": [{"datetime": "2024-01-01T00:00:00Z", "carbonIntensity": -5}]}, ">= 0"),
        ({"zone": "DE", "history": []}, "empty"),
        (
            [{"location": "a", "time": "2024-01-01T00:00:00Z", "rating": 1, "duration": "soon"}],
            "bad duration",
        ),
    ],
)
def test_bad_documents_name_the_field(doc: object, match: str) -> None:
    with pytest.raises(CarbonDataError, match=match):
        parse_carbon(doc)


def test_location_filter(carbon_dir: Path) -> None:
    data = json.loads((carbon_dir / "carbon-aware-emissions-sample.json").read_text())
    assert len(parse_carbon(data, location="eastus")) == 24
    with pytest.raises(CarbonDataError, match="no carbon points for location 'westus'"):
        parse_carbon(data, location="westus")


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    seen_headers: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        type(self).seen_headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path.startswith("/fail"):
            self.send_error(503, "overloaded")
            return
        payload = b"{not json" if self.path.startswith("/garbage") else self.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def carbon_server(carbon_dir: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving the Electricity Maps sample."""
    _Handler.body = (carbon_dir / "electricitymaps-history-sample.json").read_bytes()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    th.join(5)


@pytest.mark.asyncio
async def test_fetch_over_http_with_auth_header_and_errors(carbon_server: str) -> None:
    cfg = CarbonFeedConfig(url=f"{carbon_server}/v3/carbon-intensity/history", headers={"auth-token": "t0k"})
    series = await fetch_carbon(cfg)
    assert len(series) == 24 and series.intensity_at(T0 + 19 * H) == 500.0
    assert _Handler.seen_headers.get("auth-token") == "t0k"
    with pytest.raises(CarbonDataError, match="HTTP 503"):
        await fetch_carbon(CarbonFeedConfig(url=f"{carbon_server}/fail"))
    with pytest.raises(CarbonDataError, match="not JSON"):
        await load_carbon(CarbonFeedConfig(url=f"{carbon_server}/garbage"))
    with pytest.raises(CarbonDataError, match="exactly one"):
        await load_carbon(CarbonFeedConfig())
    with pytest.raises(CarbonDataError, match="request failed"):
        await asyncio.wait_for(fetch_carbon(CarbonFeedConfig(url="http://127.0.0.1:9/x", timeout_s=1)), 10)


# --- energy -----------------------------------------------------------------------------


def _fake_rapl(root: Path, uj: int, max_uj: int = 1_000_000_000) -> None:
    for zone, sub in (("intel-rapl:0", "intel-rapl:0:0"), ("intel-rapl:1", None)):
        d = root / zone
        d.mkdir(parents=True, exist_ok=True)
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
        if sub:
            (root / sub).mkdir(exist_ok=True)
            (root / sub / "energy_uj").write_text("999999999\n")  # a sub-zone: must not be counted


def test_cpu_model_energy_and_carbon_per_1k_forecasts(tmp_path: Path) -> None:
    meter = EnergyMeter(
        EnergyConfig(cpu_watts_per_core=10.0, rapl_root=str(tmp_path / "none"), g_per_kwh=400.0)
    )
    start = meter.begin()
    assert start.rapl_uj is None and start.gpu_mj is None  # no RAPL dir here, no pynvml installed
    x = 0
    while meter.sample().cpu_s - start.cpu_s < 0.05:  # burn a little CPU for real
        x += sum(range(1000))
    r = meter.report(2_000)
    assert r.method == "cpu_model" and r.joules_rapl is None
    assert r.cpu_s >= 0.05 and r.joules == pytest.approx(r.cpu_s * 10.0)
    assert r.g_co2e == pytest.approx(r.joules / 3.6e6 * 400.0)
    assert r.joules_per_1k_forecasts == pytest.approx(r.joules / 2.0)
    assert r.g_co2e_per_1k_forecasts == pytest.approx(r.g_co2e / 2.0)
    assert meter.report(0).g_co2e_per_1k_forecasts is None
    assert EnergyMeter.to_dict(r)["method"] == "cpu_model"


def test_rapl_package_zones_wraparound_and_gpu(tmp_path: Path) -> None:
    _fake_rapl(tmp_path, 900_000_000)
    energy, ranges = read_rapl_uj(tmp_path) or ({}, {})
    assert sorted(energy) == ["intel-rapl:0", "intel-rapl:1"] and ranges["intel-rapl:0"] == 1_000_000_000
    meter = EnergyMeter(EnergyConfig(rapl_root=str(tmp_path)))
    a = meter.begin()
    _fake_rapl(tmp_path, 100_000_000)  # wrapped: +200 J per package
    b = meter.sample()
    r = meter.report(1000, end=b)
    assert r.method == "rapl" and r.joules_rapl == pytest.approx(400.0) and r.joules == pytest.approx(400.0)
    gpu_a = EnergySample(
        ts_ns=a.ts_ns, cpu_s=a.cpu_s, rapl_uj=a.rapl_uj, rapl_max_uj=a.rapl_max_uj, gpu_mj=1_000
    )
    gpu_b = EnergySample(
        ts_ns=b.ts_ns, cpu_s=b.cpu_s, rapl_uj=b.rapl_uj, rapl_max_uj=b.rapl_max_uj, gpu_mj=51_000
    )
    r2 = meter.report(1000, start=gpu_a, end=gpu_b, g_per_kwh=100.0)
    assert r2.method == "rapl+nvml" and r2.joules == pytest.approx(450.0)
    assert r2.g_co2e_per_1k_forecasts == pytest.approx(450.0 / 3.6e6 * 100.0)


def test_unreadable_rapl_is_none(tmp_path: Path) -> None:
    d = tmp_path / "intel-rapl:0"
    d.mkdir()
    (d / "energy_uj").write_text("not a number")
    assert read_rapl_uj(tmp_path) is None
    assert read_rapl_uj(tmp_path / "missing") is None
    with pytest.raises(RuntimeError, match="before begin"):
        EnergyMeter().report(1)
