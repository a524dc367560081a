"""`python -m mmstudio bench load`, smoke-sized: the served app under two clients answers every
endpoint of the mix, without errors and without cross-talk, and the figures come out complete.
(The full load figures, 16 and 32 clients for minutes, belong to the bench itself.)"""

from __future__ import annotations

import json

import pytest

from mmstudio.cli import main


def test_bench_load_two_clients(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "load", "--clients", "2", "--seconds", "4", "--baseline-seconds", "2",
            "--warmup", "1", "--pool", "2", "--steps", "3", "--lone-runs", "1", "--json"]
    assert main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    lone = figures["lone_denoise"]
    assert lone["api_s"] > 0 and lone["bare_loop_s"] > 0 and lone["ratio"] > 0
    one, two = figures["phases"]
    assert (one["clients"], two["clients"]) == (1, 2)
    for phase in (one, two):
        assert phase["errors"] == 0, phase
        assert phase["cross_talk"] == 0, phase
        assert phase["throughput_per_s"] > 0 and phase["rss_end_mb"] > 0
        assert phase["rss_timeline_mb"] and phase["rss_timeline_mb"][0][1] > 0
    for name in ("denoise", "tokenize", "similarity", "denoise (3 steps)"):
        assert two["endpoints"][name]["requests"] > 0, name
        assert two["endpoints"][name]["p95_s"] >= two["endpoints"][name]["p50_s"] > 0
    assert one["throughput_vs_one_client"] == 1.0 and two["throughput_vs_one_client"] > 0
    assert figures["requests_total"] >= 6 + one["requests"] + two["requests"]


def test_bench_load_refuses_bad_client_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "load", "--clients", "0"]) != 0
    assert "--clients takes client counts from 1 to 256" in capsys.readouterr().err


def test_rss_timeline_keeps_the_first_sample_at_or_after_each_mark() -> None:
    from mmstudio.cli.bench_load import rss_timeline

    mb = 2**20
    samples = [(0.5, 100 * mb), (10.0, 110 * mb), (30.2, 120 * mb), (31.0, 121 * mb),
               (59.9, 122 * mb), (75.0, 130 * mb)]
    assert rss_timeline(samples) == [[0, 100.0], [30, 120.0], [75, 130.0]]
    assert rss_timeline([]) == []


def test_window_growth_compares_medians_of_two_windows() -> None:
    from mmstudio.cli.bench_load import window_growth

    mb = 2**20
    # a peak in the first window and a dip in the last do not count; the level does
    samples = [(t / 2, (150 if t == 70 else 100) * mb) for t in range(0, 240)]  # 0 .. 119.5 s
    samples += [(120 + t / 2, (90 if t == 10 else 110) * mb) for t in range(0, 60)]  # .. 149.5
    assert window_growth(samples, warmup=30) == 0.1
    assert window_growth(samples[:100], warmup=30) is None  # 50 s: no room for two windows
    assert window_growth([], warmup=30) is None
