"""``finllm train``: train, distil, gate and export an edge model on a bundled dataset or a file.

    finllm train --dataset sp500 --out models/mine
    finllm train --file bars.csv --columns ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume \\
        --out models/mine --key ~/.finllm/dev.pem
    finllm replay --file bars.csv --columns ... --model models/mine --out runs/mine

The model is the project's edge design (:mod:`tools.train_edge`): a learned correction of a
GJR-GARCH(1,1) anchor computed online from the bars (range, asymmetry, volume and time-of-day
features), a teacher ensemble distilled into a small student, both shrunk towards the anchor by a
weight chosen on the validation period, exported to ONNX with a ``manifest.json`` (sha256 of
every file, data hash, splits, feature config, validation figures).

A file (``--columns``: the keys of :class:`adapters.datasets.ColumnMapping`, e.g. ``ts=...``,
``close=...``; a bar file needs ``close``, and should give ``open``/``high``/``low`` for the
range features) is split 60/20/20 of its time span into training, validation and test.  Bad
input is refused with the column or row named: missing or non-numeric OHLC columns, empty cells,
non-positive prices, timestamps out of order (the file is read in its own order), or too few bars
to train.  Nothing is dropped silently.

Models load only with a trusted signature.  With ``--key PEM`` (an Ed25519 private key, e.g. from
``finllm models keygen``) the manifest is signed, the model is served by a real
``finllm replay`` over the file through the product's feed and edge reasoner, the test period's
forecasts are scored against the classical baselines (rolling random walk, EWMA, GARCH, GJR, HAR)
and those held-out figures go into the manifest (signed again).  ``--dataset`` does the same with
``finllm replay --dataset`` (``eq-daily``: a replay of ``sp500-tickers`` scored on the withheld
tickers).  To serve it, trust the key:
``$FINLLM_TRUSTED_KEYS`` names a TOML file with its public entry (printed here).  Without
``--key`` the manifest is written unsigned and no held-out figures are computed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from adapters.datasets import ColumnMapping, DatasetError, Tape, load_file

__all__ = ["TrainInputError", "check_tape", "main"]

_MIN_BARS = 300  # per file: fewer cannot give training, validation and test periods worth fitting


class TrainInputError(ValueError):
    """A file ``finllm train`` cannot train on; raised by :func:`check_tape` with the column or
    row at fault.  The caller fixes the file (or its ``--columns``) and runs again."""


def _mapping(spec: str) -> ColumnMapping:
    import msgspec

    raw: dict[str, Any] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise TrainInputError(f"--columns: bad entry {part!r} (want key=value, e.g. close=Close)")
        key, val = k.strip(), v.strip()
        raw[key] = int(val) if key == "bar_ns" else val
    raw["sort"] = False  # out-of-order rows are reported, never silently re-sorted
    try:
        return msgspec.convert(raw, ColumnMapping)
    except msgspec.ValidationError as exc:
        raise TrainInputError(f"--columns: {exc}") from None


def check_tape(tape: Tape, mapping: ColumnMapping) -> None:
    """Refuse a tape that cannot be trained on, naming the column and row (1-based data rows)."""
    cols = (
        [("close", tape.price), *((c, tape.extra[c]) for c in ("open", "high", "low"))]
        if tape.kind == "bars"
        else [("price", tape.price)]
    )
    for name, arr in cols:
        src = getattr(mapping, name, None) or name
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0.0))
        if len(bad):
            raise TrainInputError(
                f"column {src!r} ({name}): {len(bad)} empty, non-numeric or non-positive value(s), "
                f"first at data row {int(bad[0]) + 1} ({arr[bad[0]]!r})"
            )
    if tape.kind == "bars":
        hi, lo = tape.extra["high"], tape.extra["low"]
        bad = np.flatnonzero(hi < lo)
        if len(bad):
            raise TrainInputError(f"row {int(bad[0]) + 1}: high {hi[bad[0]]} below low {lo[bad[0]]}")
    for k, sym in enumerate(tape.symbols):
        rows = np.flatnonzero(tape.sym == k)
        ts = tape.ts_ns[rows]
        back = np.flatnonzero(np.diff(ts) <= 0)
        if len(back):
            r = int(rows[back[0] + 1]) + 1
            raise TrainInputError(
                f"column {mapping.ts!r}: timestamps of {sym} not increasing at data row {r} "
                "(sort the file by time; a repeated time is a duplicate bar)"
            )
        if len(rows) < _MIN_BARS and tape.kind == "bars":
            raise TrainInputError(
                f"{sym}: {len(rows)} bars; training needs at least {_MIN_BARS} per symbol "
                "(60% train, 20% validation, 20% test)"
            )


def _dataset_tape(args: argparse.Namespace) -> tuple[Tape, ColumnMapping, str]:
    mapping = _mapping(args.columns)
    try:
        tape = load_file(args.file, mapping)
    except DatasetError as exc:
        raise TrainInputError(str(exc)) from None
    check_tape(tape, mapping)
    return tape, mapping, Path(args.file).stem


def _span(ns: int) -> str:
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9)):
        if ns >= size and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _score_by_replay(
    args: argparse.Namespace, out: Path, model_id: str, entry: dict[str, Any]
) -> dict[str, Any]:
    """Serve the signed model by ``finllm replay`` over the file, score the test period."""
    from adapters import scoring
    from adapters.report_skill import bars_from_tape, run_skill
    from tools.commands import replay

    tape = load_file(args.file, _mapping(args.columns))
    with tempfile.TemporaryDirectory(prefix="finllm-train-") as tmp:
        argv = ["--file", args.file, "--columns", args.columns, "--model", str(out), "--out", tmp]
        argv += ["--no-report", "--progress", "off", "--set", f'actors[edge].config.model="{model_id}"']
        if tape.kind == "ticks":
            size = float(entry["feature_config"]["bar_ns"])
            argv += ["--set", f'actors[feed].config.bars=[{{ kind = "time", size = {size} }}]']
        if replay.main(argv) != 0:
            raise RuntimeError("the scoring replay failed; see its output above")
        fcs = scoring.read_forecasts(Path(tmp) / "forecasts.jsonl")
    start = int(np.datetime64(entry["splits"]["test"]["first_basis"].rstrip("Z"), "ns").astype(np.int64))
    bars = bars_from_tape(tape, int(entry["feature_config"]["bar_ns"]), 1.0)
    sk = run_skill(fcs, bars, start_ns=start, min_history=60)
    return {k: (v if math.isfinite(v) else None) for k, v in sk.pooled.items()}


def _score_dataset(dataset: str, out: Path, model_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Serve the signed model by ``finllm replay --dataset`` and score its held-out part (the test
    period; for the pooled daily model, the withheld tickers) against the baselines."""
    from adapters import scoring
    from adapters.datasets import load_dataset
    from adapters.report_skill import bars_from_tape, run_skill
    from tools.bench_edge import replay_forecasts

    replayed = "sp500-tickers" if dataset == "eq-daily" else dataset
    extra = [f'actors[edge].config.model="{model_id}"']
    with tempfile.TemporaryDirectory(prefix="finllm-train-") as tmp:
        fcs = scoring.read_forecasts(replay_forecasts(replayed, Path(tmp), str(out), extra))
    bar_ns = int(entry["feature_config"]["bar_ns"])
    bars = bars_from_tape(load_dataset(replayed), bar_ns, 50.0 if replayed == "emini" else 1.0)
    rw = 390 if bar_ns < 86_400 * 10**9 else 250
    if entry.get("withheld_symbols"):
        sk = run_skill(fcs, bars, symbols=entry["withheld_symbols"], min_history=100, rw_window=rw)
    else:
        start = int(np.datetime64(entry["splits"]["test"]["first_basis"].rstrip("Z"), "ns").astype(np.int64))
        sk = run_skill(fcs, bars, start_ns=start, rw_window=rw)
    return {k: (v if math.isfinite(v) else None) for k, v in sk.pooled.items()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="finllm train", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a bundled dataset: emini, sp500, nasdaq, eq-daily")
    src.add_argument("--file", help="a CSV/Parquet file of bars (or trades) named by --columns")
    ap.add_argument("--columns", default="", help="adapters.datasets.ColumnMapping keys: ts=..,close=..")
    ap.add_argument("--out", required=True, help="model directory to write (weights + manifest.json)")
    ap.add_argument("--id", help="model id (default: the file's name and bar length)")
    ap.add_argument("--bar-seconds", type=float, default=60.0, help="bar length for a trade file")
    ap.add_argument("--key", help="Ed25519 private key (PEM) to sign with; enables the held-out scoring")
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    from tools import train_edge as te

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = te.TrainConfig(seed=args.seed, max_epochs=args.max_epochs)
    try:
        if args.dataset:
            if args.dataset not in te.DATASET_SPECS:
                print(f"finllm train: unknown dataset {args.dataset!r}; one of {sorted(te.DATASET_SPECS)}")
                return 2
            entry = te.train_dataset(args.dataset, out, cfg)
            model_id = te.DATASET_SPECS[args.dataset].model_id
        else:
            tape, _, stem = _dataset_tape(args)
            bar_ns = tape.bar_ns if tape.kind == "bars" else int(args.bar_seconds * 1e9)
            if bar_ns <= 0:
                raise TrainInputError("cannot tell the bar length: give bar_ns in --columns")
            model_id = args.id or f"{stem}-{_span(bar_ns)}"
            symbol = tape.symbols[0] if len(tape.symbols) == 1 else "*"
            rw = 390 if bar_ns < 86_400 * 10**9 else 250
            spec = te.DatasetSpec(
                f"file:{stem}", model_id, symbol, _span(bar_ns), bar_ns, "time", 86400.0, rw
            )
            prep = te.prepare_tape(tape, spec)
            if prep.val.stop - prep.val.start < 50 or prep.test.stop - prep.test.start < 50:
                raise TrainInputError(
                    f"{len(prep.y)} usable bars after warm-up: too few for validation and test (50 each)"
                )
            entry = te.train_prepared(prep, out, cfg)
            entry["dataset"] = f"file {Path(args.file).name}"
            entry["columns"] = args.columns
    except (TrainInputError, DatasetError) as exc:
        print(f"finllm train: {exc}", file=sys.stderr)
        return 2
    path = te.write_manifest(out, {model_id: entry}, cfg)
    te.write_model_card(out, json.loads(path.read_text())["models"], cfg)
    print(
        f"wrote {path}; model {model_id}, gate weight {entry['gate']['student']} (0 = the GJR anchor alone)"
    )
    v = entry["metrics"]["validation"]["student"]["gated"]
    print(
        f"validation: CRPS / anchor {v['crps_ratio_vs_anchor']:.4f}, QLIKE / anchor "
        f"{v['qlike_norm_ratio_vs_anchor']:.4f}, 80% / 90% coverage {v['coverage_80']:.3f} / "
        f"{v['coverage_90']:.3f}"
    )
    if not args.key:
        print(
            "unsigned: sign it (finllm models sign) and trust the key before "
            "finllm replay --model can load it"
        )
        return 0
    from adapters.trust.signing import load_private_key, public_key_entry, sign_manifest

    key = load_private_key(args.key)
    sign_manifest(out, key, "finllm-train")
    entry_pub = public_key_entry(key, "finllm-train")
    keys_file = out.parent / f"{out.name}.trusted_keys.toml"
    keys_file.write_text(
        f'[[keys]]\nkey_id = "{entry_pub.key_id}"\nname = "finllm-train"\n'
        f'public_key = "{entry_pub.public_key}"\n'
    )
    if args.file or args.dataset:
        prev = os.environ.get("FINLLM_TRUSTED_KEYS")
        os.environ["FINLLM_TRUSTED_KEYS"] = os.pathsep.join(filter(None, [str(keys_file), prev]))
        try:
            stored = json.loads(path.read_text())["models"][model_id]
            if args.file:
                held = _score_by_replay(args, out, model_id, stored)
            else:
                held = _score_dataset(args.dataset, out, model_id, stored)
        finally:
            if prev is None:
                os.environ.pop("FINLLM_TRUSTED_KEYS", None)
            else:
                os.environ["FINLLM_TRUSTED_KEYS"] = prev
        raw = json.loads(path.read_text())
        raw["models"][model_id]["metrics"]["held_out"] = held
        path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
        sign_manifest(out, key, "finllm-train")
        keys = ("crps_ratio_vs_garch", "qlike_norm_ratio_vs_garch", "dm_pvalue_vs_garch", "coverage_80")
        shown = ", ".join(f"{k} {held[k]:.3f}" for k in (*keys, "coverage_90") if held.get(k) is not None)
        print(f"held-out (test period, from a replay): {shown}")
    print(f"signed; to serve it: FINLLM_TRUSTED_KEYS={keys_file} finllm replay ... --model {out}")
    return 0
