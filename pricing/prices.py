"""Prices as go-livepeer reads them: aiModels.json fields and the Live Runner's `price_info`.

go-livepeer charges `units x price_per_unit / pixels_per_unit` in `currency` (RUNNER-CONTRACT.md
§9): `price_per_unit` must be a JSON number (a string is refused), `pixels_per_unit` a positive
integer, and `currency` is `USD` (converted to wei through a Chainlink ETH/USD feed and followed
as the rate moves), `wei` (as is) or `eth` (x 1e18).

A price per pixel in USD is tiny (1.9e-8), so `pixels_per_unit` carries the magnitude: it is the
smallest power of ten that brings `price_per_unit` to 1 or more, and `price_per_unit` keeps
`SIGNIFICANT_DIGITS` significant digits, rounded up so the written price never falls below the
one computed. 1.171e-8 USD per pixel is written `"price_per_unit": 1.171,
"pixels_per_unit": 100000000`. A price of a wei or more per unit keeps `pixels_per_unit` 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from pricing.cost import SECONDS_PER_HOUR, JobCost, PricingError

SIGNIFICANT_DIGITS = 4
WEI_PER_ETH = Decimal(10) ** 18
# go-livepeer's Live Runner "720p" unit: one hour of 1280x720 at 30 fps (live_runner.go).
LIVE_720P_HOUR_UNITS = 3600 * 1280 * 720 * 30

Currency = Literal["USD", "wei", "eth"]
CURRENCIES: tuple[Currency, ...] = ("USD", "wei", "eth")
LiveUnit = Literal["hour", "720p", "fixed"]


def check_eth_usd(eth_usd: Decimal | None) -> None:
    if eth_usd is not None and eth_usd <= 0:
        raise PricingError(f"the ETH/USD rate must be positive, got {eth_usd}")


def usd_to(currency: str, usd: Decimal, eth_usd: Decimal | None) -> Decimal:
    """`usd` expressed in `currency` (USD, wei or eth) at `eth_usd` USD per ETH."""
    check_eth_usd(eth_usd)
    if currency == "USD":
        return usd
    if currency not in CURRENCIES:
        raise PricingError(f"unknown currency {currency!r}: use one of {', '.join(CURRENCIES)}")
    if eth_usd is None:
        raise PricingError(f"a price in {currency} needs the ETH/USD rate (--eth-usd)")
    eth = usd / eth_usd
    return eth * WEI_PER_ETH if currency == "wei" else eth


def to_usd(amount: Decimal, currency: str, eth_usd: Decimal | None) -> Decimal | None:
    """`amount` of `currency` in USD, or None when that needs a rate that was not given.

    `currency` is read as go-livepeer reads it: "" and wei are wei, eth is ETH, anything else
    is a currency its price feed converts (USD here).
    """
    check_eth_usd(eth_usd)
    lowered = currency.lower()
    if lowered in ("", "wei", "eth"):
        if eth_usd is None:
            return None
        eth = amount if lowered == "eth" else amount / WEI_PER_ETH
        return eth * eth_usd
    if currency.upper() != "USD":
        return None
    return amount


def round_up(value: Decimal, digits: int = SIGNIFICANT_DIGITS) -> Decimal:
    """`value` rounded up to `digits` significant digits."""
    if value <= 0:
        raise PricingError(f"cannot write a price of {value}: it must be positive")
    exponent = value.adjusted() - digits + 1
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_CEILING)


@dataclass(frozen=True)
class ConfigPrice:
    """The three aiModels.json fields of one price."""

    price_per_unit: Decimal
    pixels_per_unit: int
    currency: Currency

    @property
    def per_unit_of_work(self) -> Decimal:
        """The price of one unit of work (a pixel, a token...) in `currency`."""
        return self.price_per_unit / self.pixels_per_unit

    def json_price(self) -> str:
        """`price_per_unit` as a JSON number literal, without an exponent."""
        return format(self.price_per_unit.normalize(), "f")

    def fields(self) -> str:
        return (
            f'"price_per_unit": {self.json_price()}, "pixels_per_unit": {self.pixels_per_unit}, '
            f'"currency": "{self.currency}"'
        )


def config_price(
    usd_per_unit: Decimal, currency: Currency, eth_usd: Decimal | None = None
) -> ConfigPrice:
    """The aiModels.json fields for `usd_per_unit` USD per unit of work, in `currency`."""
    value = usd_to(currency, usd_per_unit, eth_usd)
    if value <= 0:
        raise PricingError(f"a price must be positive, got {value} {currency} per unit")
    pixels_per_unit = 1
    while value * pixels_per_unit < 1:
        pixels_per_unit *= 10
    if eth_usd is not None:
        check_at_least_one_wei(usd_to("wei", usd_per_unit, eth_usd), "per unit of work")
    return ConfigPrice(round_up(value * pixels_per_unit), pixels_per_unit, currency)


def check_at_least_one_wei(wei: Decimal, what: str) -> None:
    """go-livepeer rounds prices down to whole wei where it advertises them
    (`common.PriceToInt64`), so a price under one wei would show as free."""
    if wei < 1:
        raise PricingError(
            f"the price {what} is {wei:.3g} wei, under one wei: go-livepeer rounds prices down "
            "to whole wei when it advertises them, so it would be offered for free"
        )


def configured_usd_per_unit(
    price_per_unit: Decimal, pixels_per_unit: int, currency: str, eth_usd: Decimal | None
) -> Decimal | None:
    """An entry's existing price per unit of work in USD (None when no rate converts it)."""
    if pixels_per_unit <= 0:
        raise PricingError(f"pixels_per_unit must be a positive integer, got {pixels_per_unit}")
    usd = to_usd(price_per_unit, currency, eth_usd)
    return None if usd is None else usd / pixels_per_unit


def live_price_info(cost: JobCost, margin: Decimal, unit: LiveUnit) -> dict[str, object]:
    """A Live Runner `price_info` (USD) covering `cost` plus `margin`.

    hour: per hour of session; go-livepeer charges a session by its seconds, and a single-shot
    session lasts one request, so this is a job's cost over its seconds, scaled to an hour.
    720p: the same USD per hour; go-livepeer divides it over the pixel-frames of an hour of
    1280x720 at 30 fps and charges a session that many per second whatever it carries, so
    only the rounding to whole wei differs. fixed: per request (one typical job).
    """
    if margin < 0:
        raise PricingError(f"the margin must not be negative (that is a loss), got {margin}")
    factor = 1 + margin
    if unit in ("hour", "720p"):
        usd = cost.usd_per_job / cost.workload.seconds_per_job * SECONDS_PER_HOUR * factor
    elif unit == "fixed":
        usd = cost.usd_per_job * factor
    else:
        raise PricingError(f"unknown Live Runner unit {unit!r}: use hour, 720p or fixed")
    return {"price": round_up(usd), "currency": "usd", "unit": unit}


def live_json(price_info: dict[str, object]) -> str:
    """`price_info` as JSON, its price a JSON number (go-livepeer reads a json.Number)."""
    price = price_info["price"]
    assert isinstance(price, Decimal)
    return (
        f'{{"price": {format(price.normalize(), "f")}, "currency": "{price_info["currency"]}", '
        f'"unit": "{price_info["unit"]}"}}'
    )


def live_wei(price_info: dict[str, object], eth_usd: Decimal) -> Decimal:
    """The wei per second, per pixel-frame or per request go-livepeer advertises for a
    Live Runner `price_info`; it refuses a registration whose price converts to under 1 wei."""
    usd = Decimal(str(price_info["price"]))
    divisor = {"hour": SECONDS_PER_HOUR, "720p": Decimal(LIVE_720P_HOUR_UNITS), "fixed": Decimal(1)}
    wei = usd_to("wei", usd / divisor[str(price_info["unit"])], eth_usd)
    check_at_least_one_wei(wei, f"of the Live Runner {price_info['unit']} unit")
    return wei
