"""How the harness times: device-synchronised, warm-up first, paths interleaved, medians.

- Before a timer starts and before it stops, the device is synchronised, so a time covers all
  the GPU work a call queued, not just its launch.
- Warm-up calls (lazy CUDA set-up, cuDNN autotuning, graph capture) are run and discarded.
- Paths compared with each other alternate run by run (stock, ours, stock, ours...), so drift
  in clocks, temperature or a neighbour's load falls on both alike.
- Each run gets a fresh seed; run i of every path uses the same seed.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed run, in order."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def summary(self) -> dict[str, float | int]:
        return {
            "median_s": self.median,
            "p10_s": self.quantile(0.1),
            "p90_s": self.quantile(0.9),
            "min_s": min(self.samples),
            "runs": len(self.samples),
        }


def timed_call(function: Callable[[], object], device: torch.device) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def interleaved(
    paths: Mapping[str, Callable[[int], object]],
    device: torch.device,
    *,
    runs: int,
    warmup: int,
    first_seed: int = 1000,
) -> dict[str, Timing]:
    """Time each path `runs` times after `warmup` untimed calls, alternating between paths.

    Each path is called with a seed; timed run i uses seed first_seed + i for every path.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got {runs} and {warmup}")
    for index in range(warmup):
        for call in paths.values():
            call(first_seed - 1 - index)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for index in range(runs):
        for name, call in paths.items():
            seconds, _ = timed_call(functools.partial(call, first_seed + index), device)
            samples[name].append(seconds)
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def matrix_rate(device: torch.device, dtype: torch.dtype | None = None) -> dict[str, object]:
    """The device's measured dense matrix-multiply rate (FLOP/s), the floor's denominator.

    CUDA: a float16 8192^3 product, as KINDS.md measured Hopper's rate; CPU: float32 1024^3.
    """
    if device.type == "cuda":
        size, dtype = 8192, dtype or torch.float16
    else:
        size, dtype = 1024, dtype or torch.float32
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    for _ in range(3):
        torch.mm(a, b)
    repeats = 10
    seconds, _ = timed_call(lambda: [torch.mm(a, b) for _ in range(repeats)], device)
    rate = 2 * size**3 * repeats / seconds
    return {
        "flop_per_s": rate,
        "how": f"{str(dtype).removeprefix('torch.')} {size}x{size}x{size} matrix product, "
        f"random data, mean of {repeats} after 3 warm-ups, measured in this run",
    }
