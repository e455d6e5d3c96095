"""Strategies: the API (:mod:`strategies.api`) and the bundled examples."""

from strategies.api import NoParams, Strategy, StrategyContext, StrategyError, StrategySpec

__all__ = ["NoParams", "Strategy", "StrategyContext", "StrategyError", "StrategySpec"]
