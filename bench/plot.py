"""Latency against throughput from `agora bench saga` runs: p50 and p99 against sagas/s, one
line per backend and results file.

    .venv/bin/python bench/plot.py                       # bench/results/*.jsonl
    .venv/bin/python bench/plot.py bench/results/saga-before.jsonl -o /tmp/saga.png

Each results file holds JSON lines as `agora bench saga` prints them (other scenarios' lines
are skipped), typically a sweep over --concurrency; points are joined in concurrency order and
labelled with it.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib as mpl
import orjson
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent


def load(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Saga results by series (`<file stem>, <backend>`), in concurrency order."""
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            result = orjson.loads(line)
            if result.get("scenario") == "saga" and result.get("completed"):
                series[f"{path.stem}, {result['backend']}"].append(result)
    for points in series.values():
        points.sort(key=lambda r: r["concurrency"])
    return dict(sorted(series.items()))


def plot(series: dict[str, list[dict[str, Any]]], output: Path) -> None:
    figure = Figure(figsize=(9, 5.5), dpi=110)
    axes = figure.subplots()
    colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (name, points) in zip(colours, series.items(), strict=False):
        rates = [p["sagas_per_s"] for p in points]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--^")):
            axes.plot(
                rates,
                [p[key] for p in points],
                style,
                color=colour,
                label=f"{name} {key[:3]}",
            )
        for p in points:
            axes.annotate(
                f"c={p['concurrency']}",
                (p["sagas_per_s"], p["p50_ms"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=colour,
            )
    axes.set_xlabel("sagas/s (closed loop; c = buyers)")
    axes.set_ylabel("latency, POST to CONFIRMED seen (ms)")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title("agora bench saga: latency against throughput")
    figure.tight_layout()
    figure.savefig(output)
    print(f"wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, help="JSON lines files")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "performance-saga.png")
    args = parser.parse_args()
    paths = args.results or sorted((ROOT / "bench" / "results").glob("*.jsonl"))
    series = load(paths)
    if not series:
        raise SystemExit("no saga results in " + ", ".join(map(str, paths)))
    plot(series, args.output)


if __name__ == "__main__":
    main()
