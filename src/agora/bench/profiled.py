"""`python -m agora.bench.profiled OUT ARGS...`: `python -m agora ARGS...` under cProfile, every
thread included, its statistics written to OUT (for `python -m pstats OUT`) when it stops.

cProfile sees only the thread that enables it, and much of the embedded platform's work runs
elsewhere (aiosqlite runs each connection's SQLite calls in a thread of its own): each new thread
therefore starts a profiler of its own, and the statistics are merged at the end.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import runpy
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    profiles = [cProfile.Profile()]

    def profile_thread(_frame: FrameType, _event: str, _arg: Any) -> None:
        sys.setprofile(None)
        thread_profile = cProfile.Profile()
        profiles.append(thread_profile)
        thread_profile.enable()

    def write() -> None:
        merged = pstats.Stats(profiles[0])
        for thread_profile in profiles[1:]:
            merged.add(thread_profile)
        merged.dump_stats(out)

    def stop(signum: int, _frame: FrameType | None) -> None:
        # uvicorn restores this handler once it has shut down and raises the signal again, so
        # the statistics cover the whole run; then die of the signal as `agora up` would.
        write()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop)
    threading.setprofile(profile_thread)
    sys.argv = ["agora", *args]
    profiles[0].enable()
    try:
        runpy.run_module("agora", run_name="__main__", alter_sys=True)
    finally:
        write()


if __name__ == "__main__":
    main()
