"""Text adapters: normalization, injection defence, dedup, entity linking, sentiment, embeddings.

Pure functions and small classes with no engine dependency, shared by the
``NarrativeIngest`` and ``SanityChecker`` actors and by ``finllm check-news``.
"""
