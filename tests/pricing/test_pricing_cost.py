"""The cost arithmetic and price rules against hand-computed cases."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from pricing.cost import Deployment, PricingError, Workload, job_cost, recommended_usd_per_unit
from pricing.gpus import UnknownGpuError, gpu_price
from pricing.prices import config_price, configured_usd_per_unit, live_price_info, live_wei

# 0.125 cores (Modal's minimum) x 0.0000131 USD per core-second.
MIN_CPU_USD_S = D("0.0000016375")


def deployment(**fields) -> Deployment:
    fields.setdefault("gpu", gpu_price("H100", D("0.001")))
    return Deployment(**fields)


# --- the GPU table ------------------------------------------------------------------------


def test_gpu_prices_come_from_the_table_and_scale_with_the_count():
    assert gpu_price("H100").usd_per_second == D("0.001097")
    assert gpu_price("h100:2").usd_per_second == D("0.002194")
    assert gpu_price("A10G").name == "A10"  # older spelling of the same kind
    assert gpu_price("L40S").usd_per_second == D("0.000542")


def test_an_unknown_gpu_is_an_error_listing_the_known_ones():
    with pytest.raises(UnknownGpuError, match="known GPUs are T4, L4, A10, L40S") as error:
        gpu_price("B200+")
    assert "--gpu-price" in str(error.value)


def test_an_unknown_gpu_can_be_priced_by_hand_but_not_at_zero():
    assert gpu_price("MI300X:2", D("0.002")).usd_per_second == D("0.004")
    for bad in (D(0), D("-0.001")):
        with pytest.raises(ValueError, match="must be positive"):
            gpu_price("H100", bad)
    with pytest.raises(UnknownGpuError, match="positive integer"):
        gpu_price("H100:0")


# --- what a job is billed for -------------------------------------------------------------


def test_sparse_traffic_every_job_is_cold_and_followed_by_the_scaledown_window():
    # 2 s job + 10 s cold start + 60 s idle before the container stops = 72 s,
    # at 0.001 + 0.0000016375 USD/s = 0.0721179 USD for a million units.
    cost = job_cost(
        deployment(scaledown_window_s=D(60)),
        Workload(seconds_per_job=D(2), units_per_job=1_000_000, cold_start_s=D(10)),
    )
    assert (cost.busy_s, cost.cold_s, cost.idle_s, cost.billed_s) == (D(2), D(10), D(60), D(72))
    assert cost.deployment.usd_per_second == D("0.0010016375")
    assert cost.usd_per_job == D("0.07211790")
    assert cost.break_even_usd_per_unit == D("7.21179E-8")


def test_a_warm_pool_is_shared_by_the_jobs_of_an_hour():
    # One H100 container all hour (3600 s) for 1800 jobs: 2 s billed per job, 1.819 of it idle.
    cost = job_cost(
        Deployment(gpu=gpu_price("H100"), min_containers=1),
        Workload(D("0.181"), 262_144, jobs_per_hour=D(1800)),
    )
    assert (cost.busy_s, cost.cold_s, cost.idle_s) == (D("0.181"), D(0), D("1.819"))
    assert cost.usd_per_job == (D("0.001097") + MIN_CPU_USD_S) * 2 == D("0.002197275")
    assert not cost.warnings


def test_a_load_beyond_the_warm_pool_is_billed_by_its_busy_seconds_and_says_so():
    # 36000 jobs x 0.5 s = 18000 busy seconds an hour, more than 2 containers x 3600 s.
    cost = job_cost(deployment(min_containers=2), Workload(D("0.5"), 100, jobs_per_hour=D(36000)))
    assert cost.billed_s == D("0.5")
    assert "more than min_containers=2" in cost.warnings[0]


def test_random_arrivals_share_cold_starts_and_idle_time():
    # 1 job per second on average, scaledown window 2 s:
    # P(cold) = e^-2 = 0.1353352832, idle = (1 - e^-2) / 1 = 0.8646647168 s.
    cost = job_cost(
        deployment(scaledown_window_s=D(2)),
        Workload(D("0.1"), 1, cold_start_s=D(10), jobs_per_hour=D(3600)),
    )
    assert abs(cost.cold_s - D("1.353352832366127")) < D("1e-12")
    assert abs(cost.idle_s - D("0.864664716763387")) < D("1e-12")
    assert abs(cost.billed_s - D("2.318017549129514")) < D("1e-12")
    assert not cost.warnings


def test_rare_jobs_tend_to_the_sparse_traffic_case():
    sparse = job_cost(deployment(scaledown_window_s=D(60)), Workload(D(1), 1, D(20)))
    rare = job_cost(
        deployment(scaledown_window_s=D(60)), Workload(D(1), 1, D(20), jobs_per_hour=D("0.001"))
    )
    assert sparse.billed_s == D(81)
    assert abs(rare.billed_s - sparse.billed_s) < D("0.001")


def test_busy_single_containers_warn_that_cold_starts_are_undercounted():
    cost = job_cost(
        deployment(scaledown_window_s=D(60)), Workload(D("0.6"), 1, D(5), jobs_per_hour=D(3600))
    )
    assert "busy 60% of the time" in cost.warnings[0]


def test_cpu_and_memory_are_billed_with_the_gpu():
    # 0.001097 + 4 x 0.0000131 + 16 x 0.00000222 = 0.00118492 USD/s
    rate = Deployment(gpu=gpu_price("H100"), cpu_cores=D(4), memory_gib=D(16)).usd_per_second
    assert rate == D("0.00118492")


def test_recommended_price_adds_the_margin():
    cost = job_cost(deployment(scaledown_window_s=D(60)), Workload(D(2), 1_000_000, D(10)))
    assert recommended_usd_per_unit(cost, D("0.25")) == D("7.21179E-8") * D("1.25")
    assert recommended_usd_per_unit(cost, D(0)) == cost.break_even_usd_per_unit
    with pytest.raises(PricingError, match="margin must not be negative"):
        recommended_usd_per_unit(cost, D("-0.1"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seconds_per_job": D(0)}, "seconds per job must be positive"),
        ({"seconds_per_job": D(-1)}, "seconds per job must be positive"),
        ({"units_per_job": 0}, "at least one unit"),
        ({"jobs_per_hour": D(0)}, "jobs per hour must be positive"),
        ({"jobs_per_hour": D(-3)}, "jobs per hour must be positive"),
        ({"cold_start_s": D(-1)}, "must not be negative"),
    ],
)
def test_a_workload_that_makes_no_price_is_refused(fields, message):
    base = {"seconds_per_job": D(1), "units_per_job": 1, "cold_start_s": D(1)}
    with pytest.raises(PricingError, match=message):
        Workload(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_containers": -1}, "min_containers must not be negative"),
        ({"cpu_cores": D("0.1")}, "minimum 0.125"),
        ({"memory_gib": D(-1)}, "memory must not be negative"),
        ({"scaledown_window_s": D(-1)}, "scaledown_window must not be negative"),
    ],
)
def test_a_deployment_that_makes_no_price_is_refused(fields, message):
    with pytest.raises(PricingError, match=message):
        deployment(**fields)


def test_what_the_model_needs_to_know_is_asked_for():
    with pytest.raises(PricingError, match="give the expected jobs per hour"):
        job_cost(deployment(min_containers=1), Workload(D(1), 1))
    with pytest.raises(PricingError, match="cold start seconds"):
        job_cost(deployment(scaledown_window_s=D(60)), Workload(D(1), 1))
    with pytest.raises(PricingError, match="scaledown_window"):
        job_cost(deployment(), Workload(D(1), 1, cold_start_s=D(5)))


# --- prices as aiModels.json takes them ---------------------------------------------------


def test_a_usd_price_per_pixel_moves_its_magnitude_into_pixels_per_unit():
    price = config_price(D("1.04774236625E-8"), "USD")
    assert (price.json_price(), price.pixels_per_unit, price.currency) == ("1.048", 10**8, "USD")
    # Rounded up: the written price never falls below the computed one.
    assert price.per_unit_of_work >= D("1.04774236625E-8")
    assert config_price(D("2.5E-8"), "USD").json_price() == "2.5"
    assert config_price(D("2.5"), "USD").pixels_per_unit == 1


def test_a_wei_price_of_a_wei_or_more_keeps_one_pixel_per_unit():
    # 1e-8 USD at 2000 USD/ETH = 5e-12 ETH = 5,000,000 wei per unit.
    price = config_price(D("1E-8"), "wei", D(2000))
    assert (price.json_price(), price.pixels_per_unit) == ("5000000", 1)
    # 1.23456789e-8 / 3000 x 1e18 = 4,115,226.3 wei, rounded up to 4 significant digits.
    assert config_price(D("1.23456789E-8"), "wei", D(3000)).json_price() == "4116000"


def test_an_eth_price_is_in_whole_ether():
    # 3e-8 USD at 3000 USD/ETH = 1e-11 ETH per unit.
    price = config_price(D("3E-8"), "eth", D(3000))
    assert (price.json_price(), price.pixels_per_unit) == ("1", 10**11)


@pytest.mark.parametrize(
    ("usd", "currency", "eth_usd", "message"),
    [
        (D("1E-8"), "wei", None, "needs the ETH/USD rate"),
        (D("1E-8"), "wei", D(0), "ETH/USD rate must be positive"),
        (D("1E-8"), "USD", D(-3000), "ETH/USD rate must be positive"),
        (D(0), "USD", None, "must be positive"),
        (D("1E-16"), "USD", D(3000), "under one wei"),
        (D("1E-8"), "GBP", D(3000), "unknown currency"),
    ],
)
def test_prices_that_would_be_zero_or_unconvertible_are_refused(usd, currency, eth_usd, message):
    with pytest.raises(PricingError, match=message):
        config_price(usd, currency, eth_usd)


def test_existing_prices_are_read_in_the_currency_go_livepeer_reads():
    assert configured_usd_per_unit(D("1.9073484E-8"), 1, "USD", None) == D("1.9073484E-8")
    assert configured_usd_per_unit(D("2.5"), 10**8, "usd", None) == D("2.5E-8")
    # 5,000,000 wei at 2000 USD/ETH = 1e-8 USD; "" means wei as well.
    assert configured_usd_per_unit(D(5_000_000), 1, "", D(2000)) == D("1E-8")
    assert configured_usd_per_unit(D(5_000_000), 1, "wei", None) is None


# --- the Live Runner's price_info ---------------------------------------------------------


def test_live_runner_prices_per_hour_per_720p_hour_and_per_request():
    cost = job_cost(deployment(scaledown_window_s=D(60)), Workload(D(2), 1_000_000, D(10)))
    # 0.0721179 USD per 2 s job -> 129.81222 USD per hour, x 1.25 = 162.265275.
    hour = live_price_info(cost, D("0.25"), "hour")
    assert hour == {"price": D("162.3"), "currency": "usd", "unit": "hour"}
    assert live_price_info(cost, D("0.25"), "720p")["price"] == D("162.3")
    # 0.0721179 x 1.25 = 0.090147375 USD per request.
    assert live_price_info(cost, D("0.25"), "fixed")["price"] == D("0.09015")
    # 162.3 USD / 3600 s at 3000 USD/ETH = 1.5027...e13 wei per second.
    assert live_wei(hour, D(3000)) == D("162.3") / 3600 / 3000 * 10**18


def test_a_live_price_under_one_wei_is_refused_as_go_livepeer_does():
    tiny = {"price": D("0.0001"), "currency": "usd", "unit": "720p"}
    with pytest.raises(PricingError, match="under one wei"):
        live_wei(tiny, D(3000))


@pytest.mark.parametrize(
    ("name", "memory_gib", "kind"),
    [
        ("NVIDIA H100 80GB HBM3", 79.1, "H100"),
        ("NVIDIA L40S", 44.5, "L40S"),
        ("NVIDIA L4", 22.0, "L4"),
        ("NVIDIA A100-SXM4-80GB", 79.2, "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", 39.4, "A100-40GB"),
        ("NVIDIA A10", 22.0, "A10"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", 95.0, "RTX-PRO-6000"),
        ("NVIDIA GeForce RTX 4090", 24.0, None),
    ],
)
def test_calibration_names_the_modal_gpu_kind_of_a_cuda_device(name, memory_gib, kind):
    from pricing.calibrate import gpu_kind

    assert gpu_kind(name, memory_gib) == kind
