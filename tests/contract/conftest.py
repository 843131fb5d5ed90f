"""The contract suites live in modules not named test_*: give their asserts pytest's messages."""

import pytest

pytest.register_assert_rewrite("bus_contract")
