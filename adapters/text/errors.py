"""Errors raised by the text adapters.  Every one derives from :class:`TextError`."""

from __future__ import annotations

__all__ = ["ModelFileError", "NewsParseError", "TextError", "UniverseError"]


class TextError(Exception):
    """Base of every text-adapter error; catch it to handle any of them."""


class NewsParseError(TextError):
    """Raised by ``news_io.parse_news_line`` for a line that is not a valid news item.

    The caller should record the line as invalid (verdict ``invalid`` or a dead
    letter with this message) and carry on with the next line.
    """


class UniverseError(TextError):
    """Raised by ``entities.Universe.load`` when the instrument file is malformed.

    The message names the file and the offending entry; fix the file or the config.
    """


class ModelFileError(TextError):
    """Raised by the sentiment classifier or embedder when a model file is missing or
    does not match its manifest's sha256.

    Retrain (``python -m tools.train_sentiment``) or run without that scorer.
    """
