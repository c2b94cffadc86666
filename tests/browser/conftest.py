import pytest
from playwright.sync_api import expect


@pytest.fixture(autouse=True)
def _patient_expect():
    # Two CPUs shared by parallel suites: give swaps more than the default 5 s, then put it back.
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)
