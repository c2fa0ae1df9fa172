"""The arithmetic of bench/compare_summary.py (the Cassandra 2.1 / 5.0 comparison's figures), on hand-made phases,
so the table in bench/README.md means what its header says."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# bench/ is not a package: its scripts run from their folder; its pure module is loaded by path
compare = runpy.run_path(str(ROOT / "bench" / "compare_summary.py"))


def pipeline_phase(*, stored: float, p99_ms: float, keeps_up: bool = True) -> dict[str, Any]:
    return {
        "published": {"acked_samples_per_s": 50_000.0, "acked_batches_per_s": 500.0},
        "stored_samples_per_s": stored,
        "keeps_up": keeps_up,
        "latency_ms": {"write_time_minus_newest_sample": {"p50": 100.0, "p99": p99_ms}, "readable_polled": {}},
        "cpu_cores": {
            "rabbitmq": 0.2,
            "cassandra": 0.1,
            "flink_jobmanager": 0.05,
            "flink_taskmanagers": 0.4,
            "machine_busy": 1.0,
            "other": 0.1,
        },
        "cassandra_memory_at_window_end": {"rss_mib": 900.0, "heap_used_mib": 200.0, "heap_total_mib": 512.0},
    }


def test_cpu_per_message_is_per_stored_message_of_the_window() -> None:
    figures = compare["pipeline_figures"](pipeline_phase(stored=100_000.0, p99_ms=500.0))
    # 1,000 messages/s stored (100 samples each); the stack's four groups 0.75 cores -> 0.75 ms a message
    assert figures["cpu_ms_per_message"] == {
        "stack": 0.75,
        "cassandra": 0.1,
        "flink_taskmanagers": 0.4,
        "rabbitmq": 0.2,
    }


def test_the_largest_fleet_within_2_s_needs_every_run_of_that_size_to_keep_up_within_it() -> None:
    def run(side: str, vehicles: int, *phases: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"side": side, "step": "pipeline", "vehicles": vehicles,
                 "result": {"runs": [{"vehicles": vehicles, "pipeline": phase}]}} for phase in phases]  # fmt: skip

    report = {
        "runs": run("5.0", 100, pipeline_phase(stored=10_000.0, p99_ms=150.0))
        + run(
            "5.0", 500, pipeline_phase(stored=50_000.0, p99_ms=1_900.0), pipeline_phase(stored=50_000.0, p99_ms=2_100.0)
        )
        + run("5.0", 1000, pipeline_phase(stored=90_000.0, p99_ms=900.0, keeps_up=False))
        + run("2.1", 500, pipeline_phase(stored=50_000.0, p99_ms=2_000.0))
    }
    sides = compare["summary"](report)
    assert sides["5.0"]["largest_fleet_p99_within_2s"] == 100  # 500: one run over 2 s; 1,000: fell behind
    assert sides["2.1"]["largest_fleet_p99_within_2s"] == 500  # 2 s is within the target
    assert "| 500 | 2.1 | 50,000 (50,000) |" in compare["markdown"](report)


def test_a_failed_run_is_listed_not_counted() -> None:
    report = {"runs": [{"side": "5.0", "step": "pipeline", "vehicles": 100, "result": {"error": "exit code 1"}}]}
    sides = compare["summary"](report)
    assert sides["5.0"]["errors"] == [{"step": "pipeline", "vehicles": 100, "error": "exit code 1"}]
    assert sides["5.0"]["largest_fleet_p99_within_2s"] is None
