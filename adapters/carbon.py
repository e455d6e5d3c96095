"""Carbon-intensity signals: Carbon Aware SDK and Electricity Maps JSON, from a file or HTTP.

Both services describe the grid's carbon intensity in grams of CO2-equivalent
per kilowatt-hour (gCO2e/kWh); this module turns either shape into one sorted
:class:`CarbonSeries` of :class:`CarbonPoint`.

Shapes understood (``format = "auto"`` tells them apart by their keys):

Carbon Aware SDK (Green Software Foundation)
    * emissions: a list of ``{"location", "time", "rating", "duration"}``
      (``duration`` a .NET TimeSpan such as ``"01:00:00"``);
    * forecasts: a list of ``{"location", "forecastData": [{"timestamp",
      "duration" (minutes), "value"}], ...}``; a single object works too.

Electricity Maps (API v3)
    * latest: ``{"zone", "carbonIntensity", "datetime", ...}``;
    * history / past-range / forecast: ``{"zone", "history" | "data" |
      "forecast": [{"carbonIntensity", "datetime"}, ...]}``.

A point without a duration lasts until the next point (the last one lasts one
hour).  Timestamps are integer nanoseconds since the Unix epoch (UTC).

``align = "time_of_day"`` maps any clock time onto the series' first day by
time of day: a one-day profile then serves a replay of any date (the demo
replays 2013 market data; no 2013 grid data is bundled).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

__all__ = [
    "CarbonDataError",
    "CarbonFeedConfig",
    "CarbonPoint",
    "CarbonSeries",
    "fetch_carbon",
    "load_carbon",
    "load_carbon_file",
    "parse_carbon",
]

_NS_PER_S = 1_000_000_000
_DAY_NS = 86_400 * _NS_PER_S
_HOUR_NS = 3_600 * _NS_PER_S

CarbonFormat = Literal["auto", "carbon_aware", "electricity_maps"]


class CarbonDataError(ValueError):
    """Raised by :func:`parse_carbon`, :func:`load_carbon_file` and :func:`fetch_carbon`
    when a carbon-intensity document cannot be read or understood.

    The message says which field or request failed.  Callers running a live feed
    should keep the last good series and retry at the next poll; at start-up,
    fix the file or URL.
    """


class CarbonFeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where a carbon-intensity series comes from.  Exactly one of ``path``/``url``.

    ``headers`` are sent with HTTP requests (Electricity Maps wants
    ``auth-token``); ``poll_s`` is how often a URL is re-read; ``location``
    keeps only points of that location/zone (empty keeps all);
    ``max_age_s`` is how long the newest point stays valid past its end.
    """

    path: str = ""
    url: str = ""
    format: CarbonFormat = "auto"
    location: str = ""
    headers: dict[str, str] = {}
    poll_s: float = 300.0
    timeout_s: float = 5.0
    max_age_s: float = 6 * 3600.0
    align: Literal["absolute", "time_of_day"] = "absolute"


class CarbonPoint(msgspec.Struct, frozen=True, kw_only=True):
    """Intensity ``g_per_kwh`` (gCO2e/kWh) from ``ts_start`` for ``duration_ns``."""

    ts_start: int
    duration_ns: int
    g_per_kwh: float
    location: str = ""
    source: str = ""


class CarbonSeries:
    """Points sorted by start time; look-ups by engine-clock time in nanoseconds."""

    __slots__ = ("_starts", "align", "max_age_ns", "points")

    def __init__(
        self,
        points: Iterable[CarbonPoint],
        *,
        max_age_ns: int = 6 * _HOUR_NS,
        align: Literal["absolute", "time_of_day"] = "absolute",
    ) -> None:
        pts = sorted(points, key=lambda p: p.ts_start)
        if not pts:
            raise CarbonDataError("carbon series is empty")
        self.points: tuple[CarbonPoint, ...] = tuple(pts)
        self._starts = [p.ts_start for p in pts]
        self.max_age_ns = max_age_ns
        self.align = align

    def __len__(self) -> int:
        return len(self.points)

    def _map(self, ts_ns: int) -> int:
        if self.align == "absolute":
            return ts_ns
        day0 = self._starts[0] - self._starts[0] % _DAY_NS
        return day0 + (ts_ns - day0) % _DAY_NS

    def point_at(self, ts_ns: int) -> CarbonPoint | None:
        """The point in force at ``ts_ns``, or None when before the series or stale."""
        t = self._map(ts_ns)
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0:
            return None
        p = self.points[i]
        if t > p.ts_start + p.duration_ns + self.max_age_ns:
            return None
        return p

    def intensity_at(self, ts_ns: int) -> float | None:
        """gCO2e/kWh in force at ``ts_ns``; None when the series says nothing about then."""
        p = self.point_at(ts_ns)
        return None if p is None else p.g_per_kwh

    def min_ahead(self, ts_ns: int, horizon_ns: int) -> float | None:
        """The lowest intensity of points starting in ``(ts_ns, ts_ns + horizon_ns]``; None if none."""
        t = self._map(ts_ns)
        lo = bisect.bisect_right(self._starts, t)
        hi = bisect.bisect_right(self._starts, t + horizon_ns)
        if lo >= hi:
            return None
        return min(p.g_per_kwh for p in self.points[lo:hi])


# --- parsing -------------------------------------------------------------------------

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def _ts(value: Any, field: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Epoch numbers: seconds, milliseconds or nanoseconds, by magnitude.
        v = float(value)
        if v > 1e17:
            return int(v)
        if v > 1e11:
            return int(v * 1_000_000)
        return int(v * _NS_PER_S)
    if not isinstance(value, str):
        raise CarbonDataError(f"{field}: expected an ISO-8601 time, got {value!r}")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CarbonDataError(f"{field}: bad ISO-8601 time {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Integer arithmetic keeps nanosecond exactness that float timestamps lose.
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


def _timespan_ns(value: Any, field: str) -> int:
    """A .NET TimeSpan string (``[d.]hh:mm:ss[.fff]``) or a number of minutes."""
    if value is None:
        return 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(float(value) * 60 * _NS_PER_S)
    m = _TIMESPAN.match(str(value))
    if m is None:
        raise CarbonDataError(f"{field}: bad duration {value!r}")
    days, h, mi, s, frac = m.groups()
    total_s = int(days or 0) * 86_400 + int(h) * 3600 + int(mi) * 60 + int(s)
    ns = int((frac or "0")[:9].ljust(9, "0"))
    return total_s * _NS_PER_S + ns


def _intensity(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CarbonDataError(f"{field}: expected a number of gCO2e/kWh, got {value!r}")
    v = float(value)
    if not v >= 0.0 or v == float("inf"):
        raise CarbonDataError(f"{field}: intensity must be a finite number >= 0, got {value!r}")
    return v


def _detect(data: Any) -> str:
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if "rating" in item or "forecastData" in item:
            return "carbon_aware"
        if any(k in item for k in ("carbonIntensity", "history", "forecast", "zone", "data")):
            return "electricity_maps"
    raise CarbonDataError("unrecognised carbon document: neither Carbon Aware SDK nor Electricity Maps")


def _carbon_aware(data: Any) -> list[CarbonPoint]:
    items = data if isinstance(data, list) else [data]
    out: list[CarbonPoint] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise CarbonDataError(f"[{i}]: expected an object, got {type(item).__name__}")
        if "forecastData" in item:
            for j, fd in enumerate(item["forecastData"] or ()):
                where = f"[{i}].forecastData[{j}]"
                if not isinstance(fd, Mapping):
                    raise CarbonDataError(f"{where}: expected an object")
                out.append(
                    CarbonPoint(
                        ts_start=_ts(fd.get("timestamp"), f"{where}.timestamp"),
                        duration_ns=_timespan_ns(fd.get("duration"), f"{where}.duration"),
                        g_per_kwh=_intensity(fd.get("value"), f"{where}.value"),
                        location=str(fd.get("location") or item.get("location") or ""),
                        source="carbon_aware.forecast",
                    )
                )
        else:
            where = f"[{i}]"
            out.append(
                CarbonPoint(
                    ts_start=_ts(item.get("time"), f"{where}.time"),
                    duration_ns=_timespan_ns(item.get("duration"), f"{where}.duration"),
                    g_per_kwh=_intensity(item.get("rating"), f"{where}.rating"),
                    location=str(item.get("location") or ""),
                    source="carbon_aware.emissions",
                )
            )
    return out


def _electricity_maps(data: Any) -> list[CarbonPoint]:
    docs = data if isinstance(data, list) else [data]
    out: list[CarbonPoint] = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, Mapping):
            raise CarbonDataError(f"[{i}]: expected an object, got {type(doc).__name__}")
        zone = str(doc.get("zone") or "")
        for key in ("history", "data", "forecast"):
            if key in doc:
                rows = doc[key] or ()
                kind = key
                break
        else:
            rows, kind = [doc], "latest"
        for j, row in enumerate(rows):
            where = f"[{i}].{kind}[{j}]" if kind != "latest" else f"[{i}]"
            if not isinstance(row, Mapping):
                raise CarbonDataError(f"{where}: expected an object")
            out.append(
                CarbonPoint(
                    ts_start=_ts(row.get("datetime"), f"{where}.datetime"),
                    duration_ns=0,
                    g_per_kwh=_intensity(row.get("carbonIntensity"), f"{where}.carbonIntensity"),
                    location=str(row.get("zone") or zone),
                    source=f"electricity_maps.{kind}",
                )
            )
    return out


def _fill_durations(points: list[CarbonPoint]) -> list[CarbonPoint]:
    """Give a point without a duration the time until the next point (one hour for the last)."""
    pts = sorted(points, key=lambda p: p.ts_start)
    out: list[CarbonPoint] = []
    for k, p in enumerate(pts):
        if p.duration_ns > 0:
            out.append(p)
            continue
        nxt = next((q.ts_start for q in pts[k + 1 :] if q.ts_start > p.ts_start), None)
        dur = (nxt - p.ts_start) if nxt is not None else _HOUR_NS
        out.append(msgspec.structs.replace(p, duration_ns=dur))
    return out


def parse_carbon(
    data: Any,
    fmt: CarbonFormat = "auto",
    *,
    location: str = "",
    max_age_ns: int = 6 * _HOUR_NS,
    align: Literal["absolute", "time_of_day"] = "absolute",
) -> CarbonSeries:
    """Turn a decoded JSON document of either service into a :class:`CarbonSeries`.

    Raises :class:`CarbonDataError` naming the offending field.
    """
    kind = _detect(data) if fmt == "auto" else fmt
    points = _carbon_aware(data) if kind == "carbon_aware" else _electricity_maps(data)
    if location:
        points = [p for p in points if p.location == location]
        if not points:
            raise CarbonDataError(f"no carbon points for location {location!r}")
    return CarbonSeries(_fill_durations(points), max_age_ns=max_age_ns, align=align)


def _series_from_bytes(raw: bytes, cfg: CarbonFeedConfig, what: str) -> CarbonSeries:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CarbonDataError(f"{what}: not JSON: {exc}") from exc
    try:
        return parse_carbon(
            data,
            cfg.format,
            location=cfg.location,
            max_age_ns=int(cfg.max_age_s * _NS_PER_S),
            align=cfg.align,
        )
    except CarbonDataError as exc:
        raise CarbonDataError(f"{what}: {exc}") from exc


def load_carbon_file(path: str | Path, cfg: CarbonFeedConfig | None = None) -> CarbonSeries:
    """Read a carbon document from a file; raises :class:`CarbonDataError`."""
    cfg = cfg or CarbonFeedConfig(path=str(path))
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CarbonDataError(f"{path}: cannot read: {exc}") from exc
    return _series_from_bytes(raw, cfg, str(path))


def _http_get(url: str, headers: Mapping[str, str], timeout_s: float) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        raise CarbonDataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CarbonDataError(f"{url}: request failed: {exc}") from exc


async def fetch_carbon(cfg: CarbonFeedConfig) -> CarbonSeries:
    """GET ``cfg.url`` (in a worker thread, so the loop never blocks) and parse it."""
    if not cfg.url:
        raise CarbonDataError("fetch_carbon needs a url")
    raw = await asyncio.to_thread(_http_get, cfg.url, cfg.headers, cfg.timeout_s)
    return _series_from_bytes(raw, cfg, cfg.url)


async def load_carbon(cfg: CarbonFeedConfig) -> CarbonSeries:
    """Load from ``cfg.path`` or fetch ``cfg.url``; raises :class:`CarbonDataError`."""
    if bool(cfg.path) == bool(cfg.url):
        raise CarbonDataError("carbon feed: set exactly one of path or url")
    if cfg.path:
        return await asyncio.to_thread(load_carbon_file, cfg.path, cfg)
    return await fetch_carbon(cfg)
