"""Run cost estimate: each step's accelerator-hours times a price table from config.

A step that runs on a GPU records what it ran on (:func:`usage`: seconds, accelerator type, count) in its output
artifact's metadata; :func:`estimate` prices those records with :class:`CostConfig` (``prices_per_hour`` per
accelerator type, Vertex AI's names, ``cpu`` for a step without one). The defaults are placeholders in the order of
magnitude of on-demand cloud prices: put your own contract's in ``cost_config``. Never imports kfp.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from kfp_llmops.config import from_dict
from kfp_llmops.errors import ConfigError

CPU = "cpu"
USAGE_KEYS = ("step_seconds", "accelerator", "accelerator_count")  # what :func:`usage` puts in an artifact's metadata
# per accelerator-hour (and per pod-hour for ``cpu``); placeholders: set the prices you pay in cost_config
DEFAULT_PRICES = {CPU: 0.20, "NVIDIA_L4": 0.70, "NVIDIA_TESLA_T4": 0.35, "NVIDIA_TESLA_A100": 2.93,
                  "NVIDIA_A100_80GB": 3.93, "NVIDIA_H100_80GB": 9.80, "NVIDIA_H200_141GB": 10.80}


# CUDA's names where Vertex AI's differ
ALIASES = {"NVIDIA_A100_40GB": "NVIDIA_TESLA_A100", "NVIDIA_H200": "NVIDIA_H200_141GB", "NVIDIA_H100": "NVIDIA_H100_80GB"}


@dataclass(frozen=True)
class CostConfig:
    prices_per_hour: dict = field(default_factory=lambda: dict(DEFAULT_PRICES))
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not isinstance(self.prices_per_hour, dict):
            raise ConfigError(f"CostConfig.prices_per_hour must be a mapping of accelerator type to price, got {self.prices_per_hour!r}")
        prices = {**DEFAULT_PRICES, **self.prices_per_hour}  # yours override the placeholders
        for name, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                raise ConfigError(f"CostConfig.prices_per_hour[{name!r}] must be a number >= 0, got {price!r}")
        object.__setattr__(self, "prices_per_hour", {k: float(v) for k, v in prices.items()})
        if not self.currency:
            raise ConfigError("CostConfig.currency must not be empty")

    @classmethod
    def from_dict(cls, values: dict | None) -> "CostConfig":
        return from_dict(cls, values)


def accelerator_key(device_name: str) -> str:
    """A CUDA device name as the price table names it: ``NVIDIA L4`` -> ``NVIDIA_L4``, ``NVIDIA H100 80GB HBM3`` ->
    ``NVIDIA_H100_80GB``, ``NVIDIA A100-SXM4-80GB`` -> ``NVIDIA_A100_80GB``, ``Tesla T4`` -> ``NVIDIA_TESLA_T4``."""
    name = device_name.upper().replace("-", " ")
    if name.startswith("TESLA "):
        name = "NVIDIA " + name
    memory = re.search(r"\b(\d+)\s*GB\b", name)
    words = [w for w in name.split() if not re.fullmatch(r"(SXM\d*|PCIE|HBM\d*E?|NVL|\d+GB|\d+)", w)]
    key = "_".join(words)
    if memory and not key.endswith("_TESLA_T4"):
        key += f"_{memory.group(1)}GB"
    return ALIASES.get(key, key)


def current_device() -> tuple[str, int]:
    """(accelerator type, count) this process sees: the CUDA devices, else ``cpu``."""
    try:
        import torch

        if torch.cuda.is_available():
            return accelerator_key(torch.cuda.get_device_name(0)), torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        pass
    return CPU, 1


def usage(started: float, *, processes: int = 1) -> dict:
    """What a step records in its artifact's metadata for the estimate: its seconds since ``started``
    (``time.monotonic()``), and the accelerator type and count it ran on (``processes`` CPU processes count once)."""
    accelerator, count = current_device()
    return {"step_seconds": round(time.monotonic() - started, 3), "accelerator": accelerator,
            "accelerator_count": count if accelerator != CPU else 1}


@dataclass(frozen=True)
class StepUsage:
    step: str
    seconds: float
    accelerator: str = CPU
    count: int = 1


def estimate(steps: list[StepUsage], cfg: CostConfig) -> dict:
    """Accelerator-hours per type, the cost of each step and the total; a type without a price is listed under
    ``unpriced`` and left out of the total (which then says so), never priced as free."""
    hours: dict[str, float] = {}
    per_step, unpriced = {}, []
    total = 0.0
    for s in steps:
        h = s.seconds / 3600 * max(1, int(s.count))
        hours[s.accelerator] = hours.get(s.accelerator, 0.0) + h
        price = cfg.prices_per_hour.get(s.accelerator)
        if price is None:
            unpriced.append(s.step)
            continue
        per_step[s.step] = round(h * price, 6)
        total += h * price
    return {"total": round(total, 6), "currency": cfg.currency,
            "accelerator_hours": {k: round(v, 6) for k, v in sorted(hours.items())}, "steps": per_step,
            "unpriced": sorted({s.accelerator for s in steps if s.step in unpriced}), "unpriced_steps": unpriced}


def usage_from_metadata(step: str, metadata: dict) -> StepUsage | None:
    """The :func:`usage` record in an artifact's metadata, or None when the step recorded none."""
    seconds = metadata.get("step_seconds")
    if seconds is None:
        return None
    return StepUsage(step, float(seconds), str(metadata.get("accelerator") or CPU), int(metadata.get("accelerator_count") or 1))


def describe(cost: dict) -> str:
    """One line: ``0.0123 USD (cpu 0.0542 h)``, and what is left out."""
    hours = ", ".join(f"{k} {v:.4f} h" for k, v in cost["accelerator_hours"].items())
    text = f"{cost['total']:.4f} {cost['currency']} ({hours or 'no recorded usage'})"
    if cost.get("unpriced"):
        text += f"; not priced (no price for {', '.join(cost['unpriced'])} in cost_config): {', '.join(cost['unpriced_steps'])}"
    return text
