"""The shipped model weights, as package data (installed with the package, found without the repo).

* ``edge/`` - the edge forecasters: ONNX and torch weights, ``manifest.json`` (sha256 of every
  file, feature schema, data hashes, test metrics) and ``MODEL_CARD.md``;
  :func:`adapters.inference.manifest.load_manifest` verifies it before anything loads.
* ``sentiment/`` - the headline sentiment head over MiniLM embeddings (``weights.npz`` and its
  ``manifest.json``), used by :mod:`adapters.text.sentiment`.

Code finds these directories through :func:`path` (``importlib.resources``), never relative to
the working directory or to the repository, so ``pip install .`` ships and finds them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["EDGE_DIR", "SENTIMENT_DIR", "path"]


def path(*parts: str) -> Path:
    """A file or directory inside the installed ``models`` package (on the file system)."""
    return Path(str(files(__name__).joinpath(*parts)))


EDGE_DIR = path("edge")
SENTIMENT_DIR = path("sentiment")
