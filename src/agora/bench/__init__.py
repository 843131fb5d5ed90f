"""Benchmarks: `agora bench saga` and `agora bench onsale` (docs/performance.md)."""
