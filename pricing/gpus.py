"""Modal's on-demand prices per second, as a dated built-in table (override with `--gpu-price`).

Source: the project's reference notes on Modal (`MODAL.md` §9), which took them from second-hand
copies of modal.com/pricing that agree with each other (dated 2026-05-07 to 2026-06-27), a
third-party note checked against modal.com/pricing on 2026-10-04 matching A10, L40S, A100 80GB
and H100. Prices change: read the live rates with `modal billing rates` and pass `--gpu-price`.
Region multipliers (1.5-1.75x) and non-preemptible pricing (x3) are not included.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PRICES_CHECKED = "2026-10-04"
PRICES_SOURCE = (
    "Modal on-demand prices per second (modal.com/pricing via second-hand copies, "
    f"last checked {PRICES_CHECKED}); override with --gpu-price"
)

# Keyed by the `gpu` string Modal accepts (upper case). USD per second for one GPU.
GPU_USD_PER_SECOND: dict[str, Decimal] = {
    "T4": Decimal("0.000164"),
    "L4": Decimal("0.000222"),
    "A10": Decimal("0.000306"),
    "L40S": Decimal("0.000542"),
    "A100-40GB": Decimal("0.000583"),
    "A100-80GB": Decimal("0.000694"),
    "RTX-PRO-6000": Decimal("0.000842"),
    "H100": Decimal("0.001097"),
    "H200": Decimal("0.001261"),
    "B200": Decimal("0.001736"),
}

# Other spellings of the same kinds. "H100!" pins an H100 (no upgrade), billed as one.
# "B200+" is left out on purpose: it may run (and bill) on a newer kind.
GPU_ALIASES = {
    "A10G": "A10",
    "A100": "A100-40GB",
    "H100!": "H100",
}

# Containers are also billed for their CPU cores and memory (MODAL.md §9).
CPU_USD_PER_CORE_SECOND = Decimal("0.0000131")
MEMORY_USD_PER_GIB_SECOND = Decimal("0.00000222")
MIN_CPU_CORES = Decimal("0.125")


class UnknownGpuError(ValueError):
    """A GPU name that is not in the price table (and no price was given for it)."""


@dataclass(frozen=True)
class GpuPrice:
    """The price of the GPUs of one container: `count` GPUs of kind `name`."""

    name: str
    count: int
    usd_per_second: Decimal  # all `count` GPUs together
    source: str

    @property
    def label(self) -> str:
        return self.name if self.count == 1 else f"{self.name}:{self.count}"


def known_gpus() -> list[str]:
    return list(GPU_USD_PER_SECOND)


def parse_gpu(spec: str) -> tuple[str, int]:
    """Split a Modal gpu string such as `H100` or `h100:2` into (kind, count)."""
    text = spec.strip().upper().replace(" ", "-")
    name, sep, count_text = text.partition(":")
    count = 1
    if sep:
        if not count_text.isdigit() or int(count_text) < 1:
            raise UnknownGpuError(f"GPU {spec!r}: the count after ':' must be a positive integer")
        count = int(count_text)
    if not name:
        raise UnknownGpuError("the GPU name is empty")
    return GPU_ALIASES.get(name, name), count


def gpu_price(spec: str, override_usd_per_second: Decimal | None = None) -> GpuPrice:
    """The price of a container's GPUs; `override_usd_per_second` is per GPU.

    An unknown kind is an error listing the known ones, unless its price is given.
    """
    name, count = parse_gpu(spec)
    if override_usd_per_second is not None:
        if override_usd_per_second <= 0:
            raise ValueError(
                f"the GPU price must be positive, got {override_usd_per_second} USD per second"
            )
        return GpuPrice(name, count, override_usd_per_second * count, "given with --gpu-price")
    if name not in GPU_USD_PER_SECOND:
        raise UnknownGpuError(
            f"unknown GPU {spec!r}: known GPUs are {', '.join(known_gpus())} "
            f"(aliases {', '.join(GPU_ALIASES)}); for another kind give its price per second "
            "with --gpu-price"
        )
    return GpuPrice(name, count, GPU_USD_PER_SECOND[name] * count, PRICES_SOURCE)
