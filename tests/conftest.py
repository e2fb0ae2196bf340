"""Shared test configuration: the async backend and Hypothesis settings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# Property tests must not fail on a slow machine: speed belongs to bench/, not to tests.
settings.register_profile(
    "auditlog", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("auditlog")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop the service runs on."""
    return "asyncio"
