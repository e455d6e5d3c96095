"""The run report's governance panel: which models served (signed by whom, fingerprinted?), what
the shadow decided, the diversity breaker's state, and the last fairness audit.

Everything comes from what the run left behind, never from a second computation:

* **models** - the versions that answered, from ``forecasts.jsonl`` (edge tier, version 1),
  with the signature checks the loader counted (``model_signature_verified_total{key_id}``,
  ``model_load_refused_total{reason}``) and the signer of the shipped manifest; the fingerprint
  is checked only when ``$FINLLM_FINGERPRINT_KEY`` names the release key (PEM): the key is a
  secret, so a report cannot check it by default and says so;
* **shadow** - ``shadow.jsonl`` (:mod:`actors.shadow`): every decision, the last one's figures;
* **breaker** - ``diversity_breaker_*`` metrics and, when present, ``diversity.json`` (or ``breaker.json``)
  (:meth:`actors.diversity.DiversityBreaker.report`);
* **fairness audit** - ``audit_fairness.json`` in the run directory or its parent (write it with
  ``finllm audit fairness --json runs/audit_fairness.json``): the gate and the worst rates.

:func:`governance_tables` returns report tables ``(heading, columns, rows, note)``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["governance_tables"]

_Table = tuple[str, Sequence[str], Sequence[Sequence[str]], str]


def _labels(key: str) -> tuple[str, dict[str, str]]:
    """``name{a=1,b=2}`` -> (name, {a: 1, b: 2})."""
    name, _, rest = key.partition("{")
    labels = dict(p.split("=", 1) for p in rest.rstrip("}").split(",") if "=" in p)
    return name, labels


def _by_label(counters: Mapping[str, Any], name: str, label: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in counters.items():
        n, labels = _labels(k)
        if n == name:
            key = labels.get(label, "?")
            out[key] = out.get(key, 0) + int(v)
    return out


def _lines(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line of an interrupted run: the rest still reports
    return out


def _models(out: Path, counters: Mapping[str, Any]) -> _Table:
    served: Counter[str] = Counter()
    for rec in _lines(out / "forecasts.jsonl"):
        if rec.get("tier") == "edge" and rec.get("version") == 1:
            served[f"{rec.get('model_id')}@{rec.get('model_version')}"] += 1
    verified = _by_label(counters, "model_signature_verified_total", "key_id")
    refused = _by_label(counters, "model_load_refused_total", "reason")
    signer = _signer()
    fingerprint = _fingerprint_note()
    rows = [[label, str(n), signer, fingerprint] for label, n in sorted(served.items())] or [
        ["(no edge forecasts)", "0", signer, fingerprint]
    ]
    note = (
        f"Signature checks at load: {sum(verified.values())} verified "
        f"({', '.join(f'key {k}: {v}' for k, v in sorted(verified.items())) or 'none'}), "
        f"{sum(refused.values())} refused "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(refused.items())) or 'none'})."
    )
    return (
        "Governance: models served",
        ["model@version", "forecasts", "manifest signed by", "fingerprint"],
        rows,
        note,
    )


def _signer() -> str:
    from adapters.inference.errors import InferenceError
    from adapters.inference.manifest import load_manifest

    try:
        sig = load_manifest().signature
    except InferenceError as exc:
        return f"REFUSED ({getattr(exc, 'reason', type(exc).__name__)})"
    return f"{sig.signer} (key {sig.key_id})" if sig else "unsigned"


def _fingerprint_note() -> str:
    pem = os.environ.get("FINLLM_FINGERPRINT_KEY", "")
    if not pem:
        return "not checked (set FINLLM_FINGERPRINT_KEY to the release key)"
    try:
        from adapters.inference.manifest import load_manifest
        from adapters.trust.fingerprint import detect, fingerprint_secret, onnx_weights

        secret = fingerprint_secret(Path(pem))
        found = [
            f"{mid}: {'yes' if detect(onnx_weights(spec.student.onnx), secret).detected else 'no'}"
            for mid, spec in sorted(load_manifest().models.items())
        ]
    except Exception as exc:  # a report never fails for a governance check; it says why
        return f"check failed: {type(exc).__name__}: {exc}"[:200]
    return ", ".join(found)


def _shadow(out: Path) -> _Table | None:
    decisions = [r for r in _lines(out / "shadow.jsonl") if r.get("type") == "model_decision"]
    if not decisions:
        return None
    shown = [d for i, d in enumerate(decisions) if d["action"] != "hold" or i == len(decisions) - 1]
    rows = [
        [
            d["action"], d["model_id"], d.get("candidate_version", ""), str(d["n"]),
            f"{d['loss_serving']:.4g}", f"{d['loss_candidate']:.4g}", f"{d['dm_pvalue']:.3g}", d["reason"],
        ]
        for d in shown
    ]  # fmt: skip
    holds = sum(d["action"] == "hold" for d in decisions)
    return (
        "Governance: shadow deployment",
        ["decision", "model", "candidate", "pairs", "loss serving", "loss candidate", "DM p", "reason"],
        rows,
        f"{len(decisions)} decisions ({holds} holds, the last shown); losses are mean CRPS of the "
        "next bar's log return; every decision is a ModelDecision on control.model and in shadow.jsonl.",
    )


def _breaker(out: Path, counters: Mapping[str, Any], gauges: Mapping[str, Any]) -> _Table | None:
    trips = sum(v for k, v in counters.items() if k.startswith("diversity_breaker_trips_total"))
    resets = sum(v for k, v in counters.items() if k.startswith("diversity_breaker_resets_total"))
    open_now = sorted(_labels(k)[1].get("symbol", "?") for k, v in gauges.items()
                      if k.startswith("diversity_breaker_open") and v)  # fmt: skip
    report: dict[str, Any] = {}
    for name in ("diversity.json", "breaker.json"):  # the shipped config writes diversity.json
        with contextlib.suppress(OSError, ValueError):  # no breaker report: the metrics alone
            report = report or json.loads((out / name).read_text())
    if not (trips or resets or open_now or report or any(k.startswith("diversity_") for k in gauges)):
        return None
    rows = [[str(trips), str(resets), ", ".join(open_now or report.get("open", [])) or "none"]]
    return ("Governance: diversity breaker", ["trips", "resets", "open at the end"], rows, "")


def _audit(out: Path) -> _Table | None:
    for path in (out / "audit_fairness.json", out.parent / "audit_fairness.json"):
        try:
            rep = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows = []
        for dim, rates in sorted(rep.get("rates", {}).items()):
            for outcome in ("verdict", "sentiment_label", "forecast", "cloud"):
                r = rates.get(outcome)
                if r:
                    rows.append([dim, outcome, f"{r['changes']}/{r['n']}", f"{r['rate']:.1%}",
                                 f"[{r['lo']:.1%}, {r['hi']:.1%}]"])  # fmt: skip
        gate = "PASSED" if not rep.get("gate_failures") else "FAILED: " + "; ".join(rep["gate_failures"])
        return (
            "Governance: fairness audit",
            ["dimension", "outcome", "changes", "rate", "95% CI"],
            rows,
            f"From {path} (max rate {rep.get('config', {}).get('max_rate')}): gate {gate}.",
        )
    return None


def governance_tables(out: Path, metrics: Mapping[str, Any]) -> list[_Table]:
    """The governance panel's tables for run directory ``out`` (module docstring)."""
    counters = metrics.get("counters", {})
    gauges = metrics.get("gauges", {})
    tables: list[_Table | None] = [
        _models(out, counters),
        _shadow(out),
        _breaker(out, counters, gauges),
        _audit(out),
    ]
    return [t for t in tables if t is not None]
