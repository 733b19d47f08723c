"""Skipping a test whose real service (PostgreSQL, the browser) is missing, except in CI.

CI (`.ci/run`) sets TESTS_REQUIRE_SERVICES=1: there a missing service is a failure, so
the store's PostgreSQL tests and the page's browser test can never pass by being skipped.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_SERVICES_ENV = "TESTS_REQUIRE_SERVICES"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for `reason`, or fail it where the services are required."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1: this run requires it)", pytrace=False)
    pytest.skip(reason)
