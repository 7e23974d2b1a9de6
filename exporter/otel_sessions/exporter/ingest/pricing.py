"""Model price table: estimates a span's cost when it carries tokens but no cost attribute.

Prices are USD per million tokens: ``input``, ``output``, and optionally ``cache_read`` (input
tokens served from the provider's prompt cache) and ``cache_write`` (input tokens written to
it). Users extend or override the table with a JSON file (``--prices`` /
``OTEL_SESSIONS_PRICES``)::

    {"my-model": {"input": 3, "output": 12, "cache_read": 0.3, "cache_write": 3.75}}

Cost (:meth:`PriceTable.estimate`). Per the GenAI semantic conventions,
``gen_ai.usage.input_tokens`` includes the cache-read tokens
(``gen_ai.usage.cache_read.input_tokens``) and the cache-write tokens
(``gen_ai.usage.cache_creation.input_tokens``), so::

    cost = max(input - cache_read - cache_write, 0) * input_price
           + cache_read * cache_read_price + cache_write * cache_write_price
           + output * output_price

A model without a ``cache_read`` (``cache_write``) price has its cache-read (cache-write)
tokens priced at the input rate: no discount (surcharge) is assumed. An instrumentation that
reports ``input_tokens`` without the cached part (as Anthropic's API counts it) makes the
uncached part come out too small; it is clamped at 0.

Model names (:meth:`PriceTable.price`), compared case-insensitively:

* the exact name of a table entry;
* or a dated snapshot of one: the entry's name followed by exactly one of ``-YYYY-MM-DD``
  (``gpt-4o-2024-08-06``), ``-YYYYMMDD`` (``claude-3-5-sonnet-20241022``), ``@YYYYMMDD``
  (Vertex AI's ``claude-3-5-sonnet@20240620``), ``-MMDD`` (``gpt-3.5-turbo-0125``) or
  ``-latest``; dates must be calendar-plausible (month 01-12, day 01-31, years 2000-2099);
* a provider prefix up to the last ``/`` is dropped when the full name does not match
  (``openai/gpt-4o``, ``models/gemini-1.5-pro``).

Nothing else matches. In particular a name that merely starts with an entry's name is another
model and gets no estimate (``gpt-4o-mini`` is not ``gpt-4o``; ``gemini-1.5-flash-8b``,
``gemini-2.0-flash-lite``, ``o1-pro``, ``gpt-4o-audio-preview`` are unpriced), nor do version
suffixes other than the dates above (``gemini-1.5-pro-002``, ``mistral-large-2411``,
``gpt-4o-2024-08``): add them to the ``--prices`` file to price them.

Costs computed here are marked as estimated in the session summary.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["PriceTable", "ModelPrice", "DEFAULT_PRICES"]


class ModelPrice(NamedTuple):
    """USD per million tokens; ``None`` cache prices mean the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


def _anthropic(input_price: float, output_price: float) -> ModelPrice:
    """Anthropic's prompt caching: reads at 0.1x the input price, (5-minute) writes at 1.25x."""
    return ModelPrice(input_price, output_price, round(input_price * 0.1, 6), round(input_price * 1.25, 6))


#: Public list prices (USD per 1M tokens) of widely used models. OpenAI bills cached input at
#: its cached-input price and charges nothing for cache writes; Anthropic as in
#: :func:`_anthropic`; Gemini's context-cache token prices (storage, billed per hour, is not a
#: token price) for prompts up to 128k tokens. Cache prices are left out where not known.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00, cache_read=1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.60, cache_read=0.075),
    "gpt-4.1": ModelPrice(2.00, 8.00, cache_read=0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, cache_read=0.10),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40, cache_read=0.025),
    "gpt-4-turbo": ModelPrice(10.00, 30.00),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "o1": ModelPrice(15.00, 60.00, cache_read=7.50),
    "o1-mini": ModelPrice(1.10, 4.40, cache_read=0.55),
    "o3": ModelPrice(2.00, 8.00, cache_read=0.50),
    "o3-mini": ModelPrice(1.10, 4.40, cache_read=0.55),
    "o4-mini": ModelPrice(1.10, 4.40, cache_read=0.275),
    "claude-3-5-sonnet": _anthropic(3.00, 15.00),
    "claude-3-5-haiku": _anthropic(0.80, 4.00),
    "claude-3-7-sonnet": _anthropic(3.00, 15.00),
    "claude-3-opus": _anthropic(15.00, 75.00),
    "claude-3-haiku": ModelPrice(0.25, 1.25, cache_read=0.03, cache_write=0.30),  # as listed
    "claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude-opus-4": _anthropic(15.00, 75.00),
    "gemini-1.5-pro": ModelPrice(1.25, 5.00, cache_read=0.3125),
    "gemini-1.5-flash": ModelPrice(0.075, 0.30, cache_read=0.01875),
    "gemini-2.0-flash": ModelPrice(0.10, 0.40, cache_read=0.025),
    "gemini-2.5-pro": ModelPrice(1.25, 10.00),
    "gemini-2.5-flash": ModelPrice(0.30, 2.50),
    "mistral-large": ModelPrice(2.00, 6.00),
    "mistral-small": ModelPrice(0.20, 0.60),
}

_MONTH = r"(?:0[1-9]|1[0-2])"
_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
#: a dated snapshot's suffix: the listed name is what precedes it
_SNAPSHOT = re.compile(rf"(?:-20[0-9]{{2}}-{_MONTH}-{_DAY}|[-@]20[0-9]{{2}}{_MONTH}{_DAY}|-{_MONTH}{_DAY}|-latest)$")
_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")
_CACHE_LIMIT = 10_000


def _as_price(value: Any) -> ModelPrice:
    if isinstance(value, ModelPrice):
        return value
    return ModelPrice(*value)


class PriceTable:
    """Model-name lookup of per-token prices, with a cache of resolved model names."""

    def __init__(self, prices: Mapping[str, ModelPrice | tuple[float, ...]] | None = None) -> None:
        """``prices``: model name -> :class:`ModelPrice` or ``(input, output[, cache_read[, cache_write]])``."""
        source = DEFAULT_PRICES if prices is None else prices
        self._prices: dict[str, ModelPrice] = {name.lower(): _as_price(price) for name, price in source.items()}
        self._cache: dict[str, ModelPrice | None] = {}

    @classmethod
    def load(cls, path: Path | None) -> PriceTable:
        """The default table, extended (and overridden, names compared case-insensitively) by the
        JSON file at ``path`` when given; :class:`ValueError` naming the file for a bad one."""
        prices = {name.lower(): price for name, price in DEFAULT_PRICES.items()}
        if path is not None:
            try:
                data = json.loads(Path(path).read_text())
            except OSError as exc:
                raise ValueError(f"{path}: cannot read the price file: {exc.strerror or exc}") from None
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                raise ValueError(f"{path}: not a JSON price file: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected an object of model -> "
                                 "{\"input\": ..., \"output\": ...[, \"cache_read\": ..., \"cache_write\": ...]}")
            given: dict[str, str] = {}
            for model, entry in data.items():
                lowered = model.lower()
                if lowered in given:
                    raise ValueError(f"{path}: {given[lowered]!r} and {model!r} name the same model "
                                     "(names are compared case-insensitively)")
                given[lowered] = model
                prices[lowered] = _entry(path, model, entry)
        return cls(prices)

    def price(self, model: str) -> ModelPrice | None:
        """The prices of ``model`` (see the module's matching rules), or None when unknown."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        lowered = model.lower()
        found = self._match(lowered)
        if found is None and "/" in lowered:
            found = self._match(lowered.rsplit("/", 1)[1])
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[model] = found
        return found

    def _match(self, name: str) -> ModelPrice | None:
        found = self._prices.get(name)
        if found is None:
            snapshot = _SNAPSHOT.search(name)
            if snapshot is not None:
                found = self._prices.get(name[:snapshot.start()])
        return found

    def estimate(self, model: str, input_tokens: float, output_tokens: float,
                 cache_read_tokens: float = 0, cache_write_tokens: float = 0) -> float | None:
        """Estimated USD cost, or None when the model has no price.

        ``input_tokens`` includes ``cache_read_tokens`` and ``cache_write_tokens``, as the GenAI
        semantic conventions count them.
        """
        price = self.price(model)
        if price is None:
            return None
        uncached = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
        read_price = price.input if price.cache_read is None else price.cache_read
        write_price = price.input if price.cache_write is None else price.cache_write
        return (uncached * price.input + cache_read_tokens * read_price + cache_write_tokens * write_price
                + output_tokens * price.output) / 1_000_000


def _entry(path: Path, model: str, entry: Any) -> ModelPrice:
    """One model of a ``--prices`` file, checked."""
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {model!r} must be an object with numeric 'input' and 'output' prices")
    unknown = sorted(set(entry) - set(_PRICE_FIELDS))
    if unknown:
        raise ValueError(f"{path}: {model!r} has unknown price field(s) {', '.join(map(repr, unknown))}; "
                         f"the fields are {', '.join(_PRICE_FIELDS)}")
    values: dict[str, float | None] = {}
    for name in _PRICE_FIELDS:
        value = entry.get(name)
        if value is None:
            if name in ("input", "output"):
                raise ValueError(f"{path}: {model!r} needs numeric 'input' and 'output' prices")
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{path}: {model!r}: {name!r} must be a non-negative number of USD per million "
                             f"tokens, not {value!r}")
        values[name] = float(value)
    return ModelPrice(**values)
