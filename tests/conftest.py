"""Shared test configuration."""

import pytest

# The contract suites live in modules not named test_*: give their asserts pytest's messages.
pytest.register_assert_rewrite("bus_contract")
