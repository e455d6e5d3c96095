"""``finllm models {list,verify,sign,keygen,fingerprint,shadow,promote,rollback}``: registry and deployment.

* ``list [--dir DIR]`` - every model id of a model directory (default: the shipped
  ``models/edge``): version, dataset, horizon, what it serves (symbols, ``any`` for a
  cross-sectional model, and the bar length it was trained on: the edge reasoner refuses bars of
  another length), and whether its manifest's signature verifies (signer and key id, or why it
  is refused).  ``--json`` for one JSON object.
* ``verify [--dir DIR] [--trusted FILE]...`` - the full load check (signature with the
  trusted keys, every file's sha256, feature schema); exit 0 when it loads, 1 when refused.
* ``sign --key PEM [--dir DIR] [--signer NAME]`` - check the file hashes, then sign the
  manifest (writes ``manifest.sig.json``).  Re-run after every retraining; the shipped models
  need the release key (kept outside the repository).
* ``keygen --out PEM [--name NAME]`` - a new Ed25519 key (mode 600) and its trusted-keys entry
  (print it into a file named by ``$FINLLM_TRUSTED_KEYS``, or ``config/data/trusted_keys.toml``).
* ``fingerprint measure --key PEM --model ID --dataset NAME`` - embed into a temporary copy and
  print the effect on the held-out rows (outputs, CRPS) and the detection rates.
* ``fingerprint embed --key PEM --model ID [--dir DIR]`` - embed the key's fingerprint
  (:mod:`adapters.trust.fingerprint`) into every network of a model: the torch weights, then a
  fresh ONNX export from them; rewrites the manifest's hashes (sign it again afterwards).
  ``fingerprint detect --key PEM (--model ID [--dir DIR] | --onnx FILE)`` - test weights for it;
  exit 0 when detected, 1 when not.
* ``shadow --candidate DIR --dataset NAME --out OUT [--model-id ID] [policy flags] [--set ...]``
  - ``finllm replay`` of the dataset with the shadow actor (:mod:`actors.shadow`) on: the
  candidate runs beside the serving edge model, is scored, and promoted or rolled back in the
  run; prints every decision (also in ``OUT/shadow.jsonl``).  Exit 0 when the candidate was
  promoted and not rolled back, 1 otherwise.
* ``promote --candidate DIR [--dir DIR]`` - blue-green at the directory level: verify the
  candidate (signature, hashes), keep the serving directory as ``DIR.previous`` and put the
  candidate in its place; the next start (or an in-process ``control.model`` promote) serves it.
  ``rollback [--dir DIR]`` swaps ``DIR.previous`` back.  Both print the decision as a
  :class:`~engine.messages.ModelDecision` JSON line.

Exit status 2 on usage errors, missing files or keys.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from adapters.inference.errors import InferenceError
from adapters.inference.manifest import DEFAULT_MODEL_DIR, MANIFEST_NAME, load_manifest, sha256_file
from adapters.trust.errors import TrustError
from adapters.trust.fingerprint import fingerprint_secret
from adapters.trust.signing import (
    generate_key,
    load_private_key,
    load_trust_store,
    public_key_entry,
    sign_manifest,
)
from engine.messages import ModelDecision, json_encoder

__all__ = ["embed_files", "fingerprint_secret", "main"]


def _span(ns: float) -> str:
    """A bar length: ``1d``, ``1m``, ``5s``..."""
    for unit, size in (("d", 86_400e9), ("h", 3_600e9), ("m", 60e9), ("s", 1e9)):
        if ns >= size and ns % size == 0:
            return f"{int(ns // size)}{unit}"
    return f"{ns / 1e9:g}s"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="finllm models", description="model registry and deployment")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list", help="model ids, versions and signature status")
    p.add_argument("--dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("verify", help="signature, hashes and schema: exit 0 if the models load")
    p.add_argument("--dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument(
        "--trusted", type=Path, action="append", default=None, help="trusted keys TOML (repeatable)"
    )
    p = sub.add_parser("sign", help="sign manifest.json (after checking every file's sha256)")
    p.add_argument("--dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    p.add_argument("--signer", default="", help="name recorded with the signature (default: from the key)")
    p = sub.add_parser("keygen", help="a new Ed25519 signing key and its trusted-keys entry")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default="dev")
    p = sub.add_parser("fingerprint", help="embed or detect a keyed fingerprint in the weights")
    p.add_argument("action", choices=["embed", "detect", "measure"])
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM): the secret")
    p.add_argument("--dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--model", default="", help="model id (every network of it)")
    p.add_argument("--onnx", type=Path, default=None, help="detect: one ONNX file instead of --model")
    p.add_argument("--dataset", default="", help="measure: held-out rows of this dataset (train_edge name)")
    p = sub.add_parser("shadow", help="run a candidate in shadow over a replay; promote/rollback by policy")
    p.add_argument("--candidate", type=Path, required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model-id", default="", help="default: the candidate's only model id")
    p.add_argument("--role", default="student", help="candidate network that would serve")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--min-samples", type=int, default=None)
    p.add_argument("--margin", type=float, default=None)
    p.add_argument("--rollback-margin", type=float, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--no-auto-promote", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    p = sub.add_parser("promote", help="blue-green: the candidate directory replaces the serving one")
    p.add_argument("--candidate", type=Path, required=True)
    p.add_argument("--dir", type=Path, default=DEFAULT_MODEL_DIR)
    p = sub.add_parser("rollback", help="blue-green: DIR.previous serves again")
    p.add_argument("--dir", type=Path, default=DEFAULT_MODEL_DIR)
    return ap


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        handler = {
            "list": _list,
            "verify": _verify,
            "sign": _sign,
            "keygen": _keygen,
            "fingerprint": _fingerprint,
            "shadow": _shadow,
            "promote": _promote,
            "rollback": _rollback,
        }[args.cmd]
        rc: int = handler(args)
        return rc
    except TrustError as exc:
        print(f"finllm models {args.cmd}: {exc}", file=sys.stderr)
        return 2


# --- registry ------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    d: Path = args.dir
    try:
        m = load_manifest(d, require_signature=False)
    except InferenceError as exc:
        print(f"finllm models list: {exc}", file=sys.stderr)
        return 2
    try:
        sig = load_manifest(d).signature
        status = f"signed by {sig.signer} (key {sig.key_id})" if sig else "unsigned"
    except InferenceError as exc:
        status = f"REFUSED: {getattr(exc, 'reason', type(exc).__name__)}"
    rows: list[dict[str, Any]] = [
        {
            "model_id": mid,
            "version": s.version,
            "dataset": s.dataset,
            "horizon": s.horizon,
            "symbol": s.symbol,
            # What it serves: the symbols (``*``: any) and the one bar kind it was trained on; the
            # edge reasoner refuses (dead-letters) time bars of any other length.
            "serves": {
                "symbols": "any" if s.symbol in ("", "*") else s.symbol,
                "bars": f"time {_span(s.feature_config.bar_ns)}",
            },
            "specialists": sorted(s.specialists),
        }
        for mid, s in sorted(m.models.items())
    ]
    if args.json:
        print(json.dumps({"dir": str(d), "signature": status, "models": rows}, indent=2))
        return 0
    print(f"{d}: {status}")
    for r in rows:
        sv = r["serves"]
        print(
            f"  {r['model_id']:<10} {r['version']}  {r['dataset']:<14} {r['horizon']:<4} "
            f"trained on {sv['symbols']:<4} {sv['bars']} bars (refuses other lengths);"
            f" specialists: {', '.join(r['specialists']) or '-'}"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    store = load_trust_store(args.trusted) if args.trusted else None
    try:
        m = load_manifest(args.dir, trust=store)
    except InferenceError as exc:
        print(f"REFUSED ({getattr(exc, 'reason', type(exc).__name__)}): {exc}", file=sys.stderr)
        return 1
    sig = m.signature
    assert sig is not None
    print(
        f"OK {args.dir}: {len(m.models)} models, signed by {sig.signer} (key {sig.key_id}), all hashes match"
    )
    return 0


def _sign(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    try:
        load_manifest(args.dir, require_signature=False)  # never sign files that fail their hashes
    except InferenceError as exc:
        print(f"finllm models sign: not signing: {exc}", file=sys.stderr)
        return 1
    signer = args.signer or args.key.stem
    info = sign_manifest(args.dir, key, signer)
    print(
        f"signed {args.dir / MANIFEST_NAME} as {signer} "
        f"(key {info.key_id}, sha256 {info.manifest_sha256[:16]}...)"
    )
    return 0


def _keygen(args: argparse.Namespace) -> int:
    key = generate_key(args.out)
    e = public_key_entry(key, args.name)
    print(f"# private key: {args.out} (mode 600; keep it out of the repository)")
    print(f'[[keys]]\nkey_id = "{e.key_id}"\nname = "{e.name}"\npublic_key = "{e.public_key}"')
    return 0


# --- fingerprint -----------------------------------------------------------------------------------


def _networks(d: Path, model_id: str) -> list[tuple[str, Any]]:
    m = load_manifest(d, require_signature=False)
    spec = m.model(model_id)
    return [("student", spec.student), ("teacher", spec.teacher), *sorted(spec.specialists.items())]


def _fingerprint(args: argparse.Namespace) -> int:
    from adapters.trust.fingerprint import detect, onnx_weights

    secret = fingerprint_secret(args.key)
    if args.action == "measure":
        return _measure(args, secret)
    if args.action == "detect":
        targets = (
            [("file", args.onnx)]
            if args.onnx
            else [(role, f.onnx) for role, f in _networks(args.dir, args.model)]
            if args.model
            else []
        )
        if not targets:
            print("finllm models fingerprint detect: give --model ID or --onnx FILE", file=sys.stderr)
            return 2
        found = True
        for role, path in targets:
            r = detect(onnx_weights(path), secret)
            found &= r.detected
            print(
                f"{role:<10} {Path(path).name}: {r.matched}/{r.checked} marks match "
                f"(p = {r.pvalue:.3g}): {'DETECTED' if r.detected else 'not detected'}"
            )
        return 0 if found else 1
    if not args.model:
        print("finllm models fingerprint embed: give --model ID", file=sys.stderr)
        return 2
    for role, files in _networks(args.dir, args.model):
        embed_files(files, secret)
        print(f"{role:<10} {files.onnx.name}: fingerprint embedded (torch weights and ONNX re-exported)")
    _rehash(args.dir)
    print(f"{args.dir / MANIFEST_NAME}: hashes updated; sign it again (finllm models sign)")
    return 0


def _measure(args: argparse.Namespace, secret: bytes) -> int:
    """Embed into a temporary copy of ``--dir``; print the output effect on the held-out rows of
    ``--dataset`` and the detection with the key, on the unmarked model, and with a random key."""
    import os
    import tempfile

    import numpy as np

    from adapters.inference.model import load_edge_model
    from adapters.scoring import crps_quantiles
    from adapters.trust.fingerprint import detect, onnx_weights
    from tools.train_edge import prepare

    if not (args.model and args.dataset):
        print("finllm models fingerprint measure: give --model ID and --dataset NAME", file=sys.stderr)
        return 2
    prep = prepare(args.dataset)
    x = prep.x[prep.test].astype(np.float32)
    y = prep.y[prep.test]
    with tempfile.TemporaryDirectory() as tmp:
        marked_dir = Path(tmp) / "edge"
        shutil.copytree(args.dir, marked_dir)
        for _, files in _networks(marked_dir, args.model):
            embed_files(files, secret)
        _rehash(marked_dir)
        a = load_manifest(args.dir, require_signature=False)
        b = load_manifest(marked_dir, require_signature=False)
        levels = np.asarray(a.model(args.model).quantile_levels)
        print(
            "| net | rows | max abs d(quantiles, vol) | / median vol | max abs d P(up) | CRPS | CRPS marked "
            "| rel. d CRPS | marked, key | unmarked, key | marked, random key |"
        )
        for role in ("student", "teacher"):
            oa = load_edge_model(a, args.model, role=role).predict_raw(x).astype(np.float64)
            ob = load_edge_model(b, args.model, role=role).predict_raw(x).astype(np.float64)
            k = len(levels)
            d = float(np.max(np.abs(oa[:, : k + 1] - ob[:, : k + 1])))
            ca = float(crps_quantiles(y, oa[:, :k], levels).mean())
            cb = float(crps_quantiles(y, ob[:, :k], levels).mean())
            marked = onnx_weights(getattr(b.model(args.model), role).onnx)
            r1 = detect(marked, secret)
            r2 = detect(onnx_weights(getattr(a.model(args.model), role).onnx), secret)
            r3 = detect(marked, os.urandom(32))
            print(
                f"| {role} | {len(x)} | {d:.3g} | {d / float(np.median(oa[:, k])):.3%} | "
                f"{float(np.max(np.abs(oa[:, k + 1] - ob[:, k + 1]))):.2g} | {ca:.6g} | {cb:.6g} | "
                f"{(cb - ca) / ca:+.2e} | "
                + " | ".join(f"{r.matched}/{r.checked} p={r.pvalue:.2g}" for r in (r1, r2, r3))
                + " |"
            )
    return 0


def embed_files(files: Any, secret: bytes) -> None:
    """Embed the fingerprint in one network's ``.pt`` and export its ONNX afresh from it."""
    import numpy as np
    import torch

    from adapters.inference.manifest import QUANTILE_LEVELS
    from adapters.inference.net import EdgeEnsemble, EdgeNet
    from adapters.trust.fingerprint import embed
    from tools.train_edge import export_onnx

    state = torch.load(files.state_dict, map_location="cpu", weights_only=True)
    marked = embed({k: v.numpy() for k, v in state.items()}, secret)
    n_features = int(np.asarray(state["mean"] if "mean" in state else state["members.0.mean"]).shape[0])
    net: EdgeNet | EdgeEnsemble
    if files.members > 1:
        net = EdgeEnsemble(n_features, files.hidden, len(QUANTILE_LEVELS), files.members)
    else:
        net = EdgeNet(n_features, files.hidden, len(QUANTILE_LEVELS))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in marked.items()})
    net.eval()
    torch.save(net.state_dict(), files.state_dict)
    export_onnx(net, files.onnx)


def _rehash(d: Path) -> None:
    path = d / MANIFEST_NAME
    raw = json.loads(path.read_text())
    raw["files"] = {name: sha256_file(d / name) for name in raw["files"]}
    path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")


# --- deployment ------------------------------------------------------------------------------------


def _shadow(args: argparse.Namespace) -> int:
    from tools.commands import replay

    try:
        cand = load_manifest(args.candidate)  # refuse before spending a replay on it
    except InferenceError as exc:
        print(f"finllm models shadow: candidate refused: {exc}", file=sys.stderr)
        return 1
    model_id = args.model_id or (next(iter(cand.models)) if len(cand.models) == 1 else "")
    if not model_id:
        print(
            f"finllm models shadow: the candidate holds {sorted(cand.models)}; give --model-id",
            file=sys.stderr,
        )
        return 2
    sets = [
        "actors[shadow].enabled=true",
        f"actors[shadow].config.candidate_dir={json.dumps(str(args.candidate.resolve()))}",
        f"actors[shadow].config.model={json.dumps(model_id)}",
        f"actors[shadow].config.candidate_role={json.dumps(args.role)}",
        f"actors[edge].config.model={json.dumps(model_id)}",
    ]
    for flag, key in (
        ("min_samples", "min_samples"),
        ("margin", "margin"),
        ("rollback_margin", "rollback_margin"),
        ("alpha", "alpha"),
    ):
        v = getattr(args, flag)
        if v is not None:
            sets.append(f"actors[shadow].config.{key}={v}")
    if args.no_auto_promote:
        sets.append("actors[shadow].config.auto_promote=false")
    argv = ["--dataset", args.dataset, "--out", str(args.out), "--forecaster", "edge", "--no-report"]
    if args.limit:
        argv += ["--limit", str(args.limit)]
    for s in [*sets, *args.set]:
        argv += ["--set", s]
    rc = replay.main(argv)
    record = args.out / "shadow.jsonl"
    if not record.exists():
        print(f"finllm models shadow: the replay wrote no {record} (rc {rc})", file=sys.stderr)
        return 2
    decisions = [
        x for x in map(json.loads, record.read_text().splitlines()) if x.get("type") == "model_decision"
    ]
    shown = [x for i, x in enumerate(decisions) if x["action"] != "hold" or i == len(decisions) - 1]
    print(f"{len(decisions)} decisions ({sum(x['action'] == 'hold' for x in decisions)} holds) in {record}")
    for x in shown:
        print(
            f"{x['action']:<9} n={x['n']:<6} loss serving {x['loss_serving']:.6g} candidate "
            f"{x['loss_candidate']:.6g}  DM {x['dm_stat']:+.3f} (p {x['dm_pvalue']:.3g})  {x['reason']}"
        )
    actions = [x["action"] for x in decisions]
    promoted = "promote" in actions and "rollback" not in actions[actions.index("promote") :]
    return 0 if promoted else 1


def _decision(action: str, model_dir: Path, reason: str, **kw: Any) -> ModelDecision:
    return ModelDecision(
        decision_id=f"cli-{action}-{time.time_ns()}",
        ts_event=time.time_ns(),
        model_id=kw.pop("model_id", ""),
        action=action,  # type: ignore[arg-type]  # promote / rollback by construction
        reason=reason,
        candidate_dir=str(model_dir),
        trace_id=f"cli-{action}",
        **kw,
    )


def _promote(args: argparse.Namespace) -> int:
    dst: Path = args.dir
    try:
        cand = load_manifest(args.candidate)
        current = load_manifest(dst, require_signature=False) if dst.exists() else None
    except InferenceError as exc:
        print(f"finllm models promote: candidate refused: {exc}", file=sys.stderr)
        return 1
    prev = dst.with_name(dst.name + ".previous")
    staged = dst.with_name(dst.name + ".staged")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(args.candidate, staged)
    load_manifest(staged)  # the copy verifies too before it goes live
    if prev.exists():
        shutil.rmtree(prev)
    if dst.exists():
        dst.rename(prev)
    staged.rename(dst)
    versions = ",".join(f"{k}@{v.version}" for k, v in sorted(cand.models.items()))
    serving = ",".join(f"{k}@{v.version}" for k, v in sorted(current.models.items())) if current else ""
    d = _decision("promote", dst, f"{args.candidate} now serves from {dst}; previous kept at {prev}",
                  candidate_version=versions, serving_version=serving)  # fmt: skip
    print(json_encoder.encode(d).decode())
    return 0


def _rollback(args: argparse.Namespace) -> int:
    dst: Path = args.dir
    prev = dst.with_name(dst.name + ".previous")
    if not prev.exists():
        print(f"finllm models rollback: nothing to roll back to ({prev} does not exist)", file=sys.stderr)
        return 2
    try:
        restored = load_manifest(prev)
    except InferenceError as exc:
        print(f"finllm models rollback: {prev} refused: {exc}", file=sys.stderr)
        return 1
    swap = dst.with_name(dst.name + ".rolledback")
    shutil.rmtree(swap, ignore_errors=True)
    dst.rename(swap)
    prev.rename(dst)
    swap.rename(prev)  # a rollback can itself be rolled back
    versions = ",".join(f"{k}@{v.version}" for k, v in sorted(restored.models.items()))
    d = _decision("rollback", dst, f"{dst} serves the previous models again", candidate_version=versions)
    print(json_encoder.encode(d).decode())
    return 0
