"""Model price table: estimates a span's cost when it carries tokens but no cost attribute.

Prices are USD per million tokens, matched on the longest model-name prefix, so
``gpt-4o-2024-08-06`` uses ``gpt-4o`` and ``gpt-4o-mini-2024-07-18`` uses ``gpt-4o-mini``.
Users extend or override the table with a JSON file (``--prices`` / ``OTEL_SESSIONS_PRICES``)::

    {"my-finetune": {"input": 3.0, "output": 12.0}}

Costs computed here are marked as estimated in the session summary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PriceTable", "DEFAULT_PRICES"]

#: Public list prices (USD per 1M input / output tokens) of widely used models.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "mistral-large": (2.00, 6.00),
    "mistral-small": (0.20, 0.60),
}


class PriceTable:
    """Longest-prefix lookup of per-token prices, with a cache of resolved model names."""

    def __init__(self, prices: Mapping[str, tuple[float, float]] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, tuple[float, float] | None] = {}

    @classmethod
    def load(cls, path: Path | None) -> PriceTable:
        """The default table, extended by the JSON file at ``path`` when given."""
        prices = dict(DEFAULT_PRICES)
        if path is not None:
            data = json.loads(Path(path).read_text())
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected an object of model -> {{input, output}}")
            for model, entry in data.items():
                try:
                    prices[str(model)] = (float(entry["input"]), float(entry["output"]))
                except (TypeError, KeyError, ValueError):
                    raise ValueError(f"{path}: {model!r} needs numeric 'input' and 'output' prices") from None
        return cls(prices)

    def price(self, model: str) -> tuple[float, float] | None:
        """``(input, output)`` USD per million tokens for ``model``, or None when unknown."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = None
        lowered = model.lower()
        for prefix in self._by_length:
            if lowered.startswith(prefix):
                found = self._prices[prefix]
                break
        if len(self._cache) < 10_000:
            self._cache[model] = found
        return found

    def estimate(self, model: str, input_tokens: float, output_tokens: float) -> float | None:
        """Estimated USD cost, or None when the model has no price."""
        price = self.price(model)
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
