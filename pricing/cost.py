"""What one job costs on Modal, and the price per unit that covers it.

Modal bills a container for every second it is up, busy or idle: its GPUs, its CPU cores and its
memory. A job's share of the bill is therefore more than the seconds it ran:

    rate          = GPU price x count + cores x CPU price + GiB x memory price      (USD/s)

    with min_containers = m >= 1 (a warm pool that is never stopped), at r jobs per hour:
      billed/job  = max(m x 3600, r x t) / r
          (the pool is paid for whole hours; jobs beyond what it can absorb are counted at
           their own seconds, without the extra containers' cold starts)

    with min_containers = 0 (containers start on demand and stop after `scaledown_window` S
    idle seconds), jobs arriving at random (Poisson) at r per hour, lambda = r / 3600:
      P(cold)     = exp(-lambda x S)                the previous job ended more than S ago
      idle/job    = (1 - exp(-lambda x S)) / lambda  idle seconds before the next job or stop
      billed/job  = t + P(cold) x cold_start + idle/job
      (with no rate given: every job is cold and is followed by S idle seconds, the limit of
       the same formula as lambda -> 0)

    cost/job      = rate x billed/job
    break-even    = cost/job / units per job                     (USD per unit of work)
    recommended   = break-even x (1 + margin)

`t` is the measured container seconds of one warm job; the min_containers = 0 formula assumes one
container at a time (load lambda x t well under 1) and says so when that does not hold.
All money is `Decimal`: go-livepeer parses prices as exact rationals (big.Rat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pricing.gpus import (
    CPU_USD_PER_CORE_SECOND,
    MEMORY_USD_PER_GIB_SECOND,
    MIN_CPU_CORES,
    GpuPrice,
)

SECONDS_PER_HOUR = Decimal(3600)


class PricingError(ValueError):
    """An input that makes no price (zero or negative rates, missing figures)."""


@dataclass(frozen=True)
class Deployment:
    """How a model is deployed on Modal: what one container is billed for, and scaling."""

    gpu: GpuPrice
    cpu_cores: Decimal = MIN_CPU_CORES
    memory_gib: Decimal = Decimal(0)
    min_containers: int = 0
    scaledown_window_s: Decimal | None = None

    def __post_init__(self) -> None:
        if self.gpu.usd_per_second <= 0:
            raise PricingError(f"the GPU price must be positive, got {self.gpu.usd_per_second}")
        if self.cpu_cores < MIN_CPU_CORES:
            raise PricingError(
                f"cpu cores must be at least Modal's minimum {MIN_CPU_CORES}, got {self.cpu_cores}"
            )
        if self.memory_gib < 0:
            raise PricingError(f"memory must not be negative, got {self.memory_gib} GiB")
        if self.min_containers < 0:
            raise PricingError(f"min_containers must not be negative, got {self.min_containers}")
        if self.scaledown_window_s is not None and self.scaledown_window_s < 0:
            raise PricingError(
                f"scaledown_window must not be negative, got {self.scaledown_window_s} s"
            )

    @property
    def usd_per_second(self) -> Decimal:
        """What one running container costs per second."""
        return (
            self.gpu.usd_per_second
            + self.cpu_cores * CPU_USD_PER_CORE_SECOND
            + self.memory_gib * MEMORY_USD_PER_GIB_SECOND
        )


@dataclass(frozen=True)
class Workload:
    """One typical job and how often jobs come."""

    seconds_per_job: Decimal  # container seconds of one warm job (median of a measurement)
    units_per_job: int  # go-livepeer units of that job (contract.units)
    cold_start_s: Decimal | None = None  # container start to first result
    jobs_per_hour: Decimal | None = None

    def __post_init__(self) -> None:
        if self.seconds_per_job <= 0:
            raise PricingError(f"seconds per job must be positive, got {self.seconds_per_job}")
        if self.units_per_job <= 0:
            raise PricingError(
                f"a job must be worth at least one unit, got {self.units_per_job} (a price per "
                "unit of a job worth nothing would be infinite)"
            )
        if self.cold_start_s is not None and self.cold_start_s < 0:
            raise PricingError(f"cold start seconds must not be negative, got {self.cold_start_s}")
        if self.jobs_per_hour is not None and self.jobs_per_hour <= 0:
            raise PricingError(f"jobs per hour must be positive, got {self.jobs_per_hour}")


@dataclass(frozen=True)
class JobCost:
    """A job's share of the Modal bill, in seconds and USD."""

    deployment: Deployment
    workload: Workload
    busy_s: Decimal  # the job itself
    cold_s: Decimal  # expected cold-start seconds per job
    idle_s: Decimal  # expected idle (scale-down or warm-pool) seconds per job
    warnings: tuple[str, ...] = field(default=())

    @property
    def billed_s(self) -> Decimal:
        return self.busy_s + self.cold_s + self.idle_s

    @property
    def usd_per_job(self) -> Decimal:
        return self.deployment.usd_per_second * self.billed_s

    @property
    def break_even_usd_per_unit(self) -> Decimal:
        return self.usd_per_job / self.workload.units_per_job


def job_cost(deployment: Deployment, workload: Workload) -> JobCost:
    """A job's share of the bill under the model in this module's docstring."""
    t = workload.seconds_per_job
    rate = workload.jobs_per_hour
    warnings: list[str] = []

    if deployment.min_containers > 0:
        if rate is None:
            raise PricingError(
                f"{deployment.min_containers} warm container(s) cost "
                f"{deployment.usd_per_second * SECONDS_PER_HOUR * deployment.min_containers:.4f}"
                " USD per hour whatever the load: give the expected jobs per hour to share "
                "that cost among jobs"
            )
        pool_s = deployment.min_containers * SECONDS_PER_HOUR
        busy_per_hour = rate * t
        if busy_per_hour > pool_s:
            warnings.append(
                f"{rate} jobs/hour keep {busy_per_hour / SECONDS_PER_HOUR:.2f} containers busy, "
                f"more than min_containers={deployment.min_containers}: the extra containers' "
                "cold starts and idle time are not counted"
            )
        billed_per_job = max(pool_s, busy_per_hour) / rate
        return JobCost(deployment, workload, t, Decimal(0), billed_per_job - t, tuple(warnings))

    if workload.cold_start_s is None:
        raise PricingError(
            "with min_containers=0 jobs may find no container running: give the cold start "
            "seconds (from a calibration or benchmark result, or --cold-start-seconds)"
        )
    if deployment.scaledown_window_s is None:
        raise PricingError(
            "with min_containers=0 each container idles for its scaledown_window after its last "
            "job, and Modal bills that time: give the deployment's scaledown_window"
        )
    window = deployment.scaledown_window_s
    if rate is None:
        cold_probability, idle = Decimal(1), window
    else:
        per_second = rate / SECONDS_PER_HOUR
        cold_probability = (-per_second * window).exp()
        idle = (1 - cold_probability) / per_second
        if per_second * t > Decimal("0.5"):
            warnings.append(
                f"at {rate} jobs/hour one container is busy {per_second * t:.0%} of the time: "
                "jobs overlap and Modal starts more containers, whose cold starts this estimate "
                "undercounts; consider min_containers"
            )
    return JobCost(
        deployment,
        workload,
        t,
        cold_probability * workload.cold_start_s,
        idle,
        tuple(warnings),
    )


def recommended_usd_per_unit(cost: JobCost, margin: Decimal) -> Decimal:
    """The break-even price per unit of work raised by `margin` (0.25 = 25 % above cost)."""
    if margin < 0:
        raise PricingError(f"the margin must not be negative (that is a loss), got {margin}")
    return cost.break_even_usd_per_unit * (1 + margin)
