"""`agora bench soak`, short: mixed orders on servers of its own while every kind of fault comes
round once (PostgreSQL killed and restarted, Kafka killed, Redis killed and back empty, a
service's process killed, the network to PostgreSQL spoilt), then `agora check`. The command's
verdict is not taken on trust: the figures it prints are checked here too."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from agora.bench.soak import FAULTS

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.kafka]


def soak(*options: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "agora", "bench", "soak", *options],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no figures printed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    return done.returncode, orjson.loads(lines[-1]), done.stderr


@pytest.mark.timeout(900)
def test_a_short_soak_meets_every_fault_and_keeps_the_invariants() -> None:
    code, result, log = soak(
        "--minutes", "2.5", "--buyers", "4", "--outage", "6", "--pause", "6", "--random-seed", "7"
    )
    assert code == 0, (result, log[-4000:])
    assert result["ok"], result
    # Every kind of fault came round, and after each an order placed then was confirmed.
    assert set(result["faults_by_kind"]) == set(FAULTS), result["faults"]
    assert all(fault["confirmed_s"] is not None for fault in result["faults"]), result["faults"]
    # Every accepted order ended, the mix made each ending happen, and the checker agreed.
    assert result["orders_final"] == result["orders_accepted"] > 20, result
    endings = result["final_by_kind"]
    assert endings.get("goods CONFIRMED", 0) > 0, endings
    assert endings.get("declined CANCELLED", 0) > 0, endings
    assert endings.get("unpaid EXPIRED", 0) > 0, endings
    assert not any(key.startswith("declined CONFIRMED") for key in endings), endings
    # The only refusals are the rules' (a buyer's ticket limit), never an order given up on.
    assert set(result["refused"]) <= {"refused 409 ticket-limit"}, result["refused"]
    assert result["check"]["exit_code"] == 0, result["check"]
    # Clients were told to come back while servers were away, and never saw a 500.
    assert not any(kind.startswith("HTTP 500") for kind in result["clients_saw"]), result
