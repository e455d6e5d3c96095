"""Energy accounting: joules and grams of CO2e per 1,000 forecasts.

Three meters, used when available, each reported separately so nobody mixes
a model with a measurement:

``cpu_model``
    this process's CPU time (user + system, seconds) x ``cpu_watts_per_core``
    (watts drawn by one fully busy core; configure it for the machine).  Always
    available; an estimate.
``rapl``
    Intel RAPL package counters under ``/sys/class/powercap`` (``energy_uj``,
    wrap-around handled).  Machine-wide, not per process; usually readable by
    root only.  None when unreadable.
``nvml``
    NVIDIA GPU energy through ``pynvml`` (``nvmlDeviceGetTotalEnergyConsumption``,
    millijoules since the driver loaded), summed over devices.  None without a
    GPU or without pynvml.

The *best* figure (:attr:`EnergyReport.joules`) is RAPL + GPU when RAPL is
readable, else the CPU model + GPU.  Carbon: ``g_co2e = joules / 3.6e6 x
g_per_kwh``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["EnergyConfig", "EnergyMeter", "EnergyReport", "EnergySample", "read_rapl_uj"]

_J_PER_KWH = 3.6e6


class EnergyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How to account energy.  ``g_per_kwh`` is used when no carbon signal is given."""

    cpu_watts_per_core: float = 12.0
    use_rapl: bool = True
    use_nvml: bool = True
    rapl_root: str = "/sys/class/powercap"
    g_per_kwh: float = 400.0


class EnergySample(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative readings at one instant.  ``rapl_uj``: zone -> microjoules; ``gpu_mj``: millijoules."""

    ts_ns: int
    cpu_s: float
    rapl_uj: dict[str, int] | None = None
    rapl_max_uj: dict[str, int] | None = None
    gpu_mj: int | None = None


class EnergyReport(msgspec.Struct, frozen=True, kw_only=True):
    """Energy between two samples.  Joules; grams CO2e; ``per_1k`` means per 1,000 forecasts."""

    wall_s: float
    cpu_s: float
    joules_cpu_model: float
    joules_rapl: float | None
    joules_gpu: float | None
    joules: float
    method: str
    forecasts: int
    g_per_kwh: float
    g_co2e: float
    joules_per_1k_forecasts: float | None
    g_co2e_per_1k_forecasts: float | None


def _rapl_zones(root: Path) -> list[Path]:
    # Top-level package zones only (intel-rapl:N); their sub-zones (intel-rapl:N:M) are
    # parts of the package, and counting them too would double the energy.
    return sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)


def read_rapl_uj(root: str | Path = "/sys/class/powercap") -> tuple[dict[str, int], dict[str, int]] | None:
    """(energy_uj, max_energy_range_uj) per package zone, or None when RAPL is absent or unreadable."""
    zones = _rapl_zones(Path(root))
    if not zones:
        return None
    energy: dict[str, int] = {}
    ranges: dict[str, int] = {}
    try:
        for z in zones:
            energy[z.name] = int((z / "energy_uj").read_text().strip())
            mr = z / "max_energy_range_uj"
            ranges[z.name] = int(mr.read_text().strip()) if mr.exists() else 0
    except (OSError, ValueError):
        return None  # typically PermissionError: RAPL is root-only on most kernels since 2020
    return energy, ranges


def _nvml_energy_mj() -> int | None:
    try:
        import pynvml  # type: ignore[import-not-found]  # optional: GPU machines only
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            total = 0
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                total += int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            return total
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # any NVML error (no device, unsupported) means: no GPU reading
        return None


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class EnergyMeter:
    """Take :meth:`sample` at the start and the end of a run; :meth:`report` the difference."""

    def __init__(self, config: EnergyConfig | None = None) -> None:
        self.config = config or EnergyConfig()
        self.start: EnergySample | None = None

    def sample(self) -> EnergySample:
        cfg = self.config
        rapl = read_rapl_uj(cfg.rapl_root) if cfg.use_rapl else None
        return EnergySample(
            ts_ns=time.time_ns(),
            cpu_s=_cpu_seconds(),
            rapl_uj=rapl[0] if rapl else None,
            rapl_max_uj=rapl[1] if rapl else None,
            gpu_mj=_nvml_energy_mj() if cfg.use_nvml else None,
        )

    def begin(self) -> EnergySample:
        self.start = self.sample()
        return self.start

    def report(
        self,
        forecasts: int,
        *,
        end: EnergySample | None = None,
        start: EnergySample | None = None,
        g_per_kwh: float | None = None,
    ) -> EnergyReport:
        """Energy since :meth:`begin` (or ``start``) and its carbon, per 1,000 ``forecasts``."""
        a = start or self.start
        if a is None:
            raise RuntimeError("EnergyMeter.report() before begin()")
        b = end or self.sample()
        cfg = self.config
        cpu_s = max(0.0, b.cpu_s - a.cpu_s)
        j_model = cpu_s * cfg.cpu_watts_per_core
        j_rapl: float | None = None
        if a.rapl_uj is not None and b.rapl_uj is not None:
            total_uj = 0
            for zone, e1 in b.rapl_uj.items():
                e0 = a.rapl_uj.get(zone)
                if e0 is None:
                    continue
                d = e1 - e0
                if d < 0:  # the counter wrapped
                    d += (b.rapl_max_uj or {}).get(zone, 0)
                total_uj += max(0, d)
            j_rapl = total_uj / 1e6
        j_gpu: float | None = None
        if a.gpu_mj is not None and b.gpu_mj is not None:
            j_gpu = max(0, b.gpu_mj - a.gpu_mj) / 1e3
        if j_rapl is not None:
            joules, method = j_rapl, "rapl"
        else:
            joules, method = j_model, "cpu_model"
        if j_gpu is not None:
            joules += j_gpu
            method += "+nvml"
        g = cfg.g_per_kwh if g_per_kwh is None else g_per_kwh
        g_co2e = joules / _J_PER_KWH * g
        per = forecasts / 1000.0 if forecasts > 0 else 0.0
        return EnergyReport(
            wall_s=(b.ts_ns - a.ts_ns) / 1e9,
            cpu_s=cpu_s,
            joules_cpu_model=j_model,
            joules_rapl=j_rapl,
            joules_gpu=j_gpu,
            joules=joules,
            method=method,
            forecasts=forecasts,
            g_per_kwh=g,
            g_co2e=g_co2e,
            joules_per_1k_forecasts=joules / per if per else None,
            g_co2e_per_1k_forecasts=g_co2e / per if per else None,
        )

    @staticmethod
    def to_dict(report: EnergyReport) -> dict[str, Any]:
        """The report as JSON-ready builtins (for metrics.json and the run report)."""
        out: dict[str, Any] = msgspec.to_builtins(report)
        return out
