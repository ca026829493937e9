"""Benchmarks of msgflash-relay: throughput against a bare loop, latency, memory, pacing, backoff.

Run by ``make bench`` (``python -m benchmarks``); never part of the test suite. Every figure
is measured in one run, side by side, because the machines it runs on are shared and noisy.
"""
