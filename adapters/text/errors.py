"""Errors raised by the text adapters.  Every one derives from :class:`TextError`."""

from __future__ import annotations

from typing import Literal

__all__ = ["ModelFileError", "NewsParseError", "ParseErrorCode", "TextError", "UniverseError"]

ParseErrorCode = Literal["too_large", "too_deep", "invalid_utf8", "invalid_json", "invalid_field"]
"""Why a news line was refused: over the byte limit, nested too deep, not UTF-8,
not a JSON object, or a field missing or of the wrong type."""


class TextError(Exception):
    """Base of every text-adapter error; catch it to handle any of them."""


class NewsParseError(TextError):
    """Raised by ``news_io.parse_news_line`` for a line that is not a valid news item.

    ``code`` says which check refused it (:data:`ParseErrorCode`); ``item_id``
    is the line's ``id`` when the line decoded far enough to have one, else
    None.  The caller should record the line as invalid (verdict ``invalid`` or
    a dead letter with this message) and carry on with the next line.
    """

    def __init__(
        self, message: str, *, code: ParseErrorCode = "invalid_field", item_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code: ParseErrorCode = code
        self.item_id = item_id


class UniverseError(TextError):
    """Raised by ``entities.Universe.load`` when the instrument file is malformed.

    The message names the file and the offending entry; fix the file or the config.
    """


class ModelFileError(TextError):
    """Raised by the sentiment classifier or embedder when a model file is missing or
    does not match its manifest's sha256.

    Retrain (``python -m tools.train_sentiment``) or run without that scorer.
    """
