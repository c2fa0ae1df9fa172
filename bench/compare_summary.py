"""The figures bench/compare_cassandra.py reports per side and tier, from its raw runs (pure functions), and the
markdown tables of bench/README.md made from them."""

from __future__ import annotations

from typing import Any

P99_TARGET_MS = 2000.0  # the latency target: p99 of write time - newest sample time
STACK_GROUPS = ("rabbitmq", "cassandra", "flink_jobmanager", "flink_taskmanagers")


def _per_message_ms(cores: float | None, messages_per_s: float) -> float | None:
    """CPU ms per message from cores busy over a window and the messages per second handled in it."""
    return round(cores * 1000.0 / messages_per_s, 3) if cores is not None and messages_per_s > 0 else None


def pipeline_figures(phase: dict[str, Any]) -> dict[str, Any]:
    """One pipeline phase of bench/pipeline.py: throughput, latency, CPU per stored message, Cassandra's memory.
    CPU is per message *stored* in the window (not acked): a job working off a backlog does more than the load."""
    published, cpu = phase.get("published", {}), phase.get("cpu_cores", {})
    samples_per_message = (published.get("acked_samples_per_s") or 0) / (published.get("acked_batches_per_s") or 1)
    stored_messages_per_s = phase["stored_samples_per_s"] / (samples_per_message or 100.0)
    latency, polled = phase["latency_ms"]["write_time_minus_newest_sample"], phase["latency_ms"]["readable_polled"]
    stack_cores = sum(cpu.get(group, 0.0) for group in STACK_GROUPS)
    return {
        "acked_samples_per_s": published.get("acked_samples_per_s"),
        "stored_samples_per_s": phase["stored_samples_per_s"],
        "keeps_up": phase["keeps_up"],
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "polled_p50_ms": polled.get("p50"),
        "polled_p99_ms": polled.get("p99"),
        "machine_busy_cores": cpu.get("machine_busy"),
        "other_cores": cpu.get("other"),
        "cpu_ms_per_message": {
            "stack": _per_message_ms(stack_cores, stored_messages_per_s),
            "cassandra": _per_message_ms(cpu.get("cassandra"), stored_messages_per_s),
            "flink_taskmanagers": _per_message_ms(cpu.get("flink_taskmanagers"), stored_messages_per_s),
            "rabbitmq": _per_message_ms(cpu.get("rabbitmq"), stored_messages_per_s),
        },
        "cassandra_memory_mib": phase.get("cassandra_memory_at_window_end"),
        "max_queue": phase.get("queue", {}).get("max_depth"),
    }


def naive_figures(phase: dict[str, Any]) -> dict[str, Any]:
    """One naive phase: what the subscriber stored, its latency, and CPU per stored message (100 rows each)."""
    cpu, latency = phase.get("cpu_cores", {}), phase["latency_ms"]["write_time_minus_newest_sample"]
    stored_messages_per_s = phase["stored_samples_per_s"] / 100.0
    return {
        "stored_samples_per_s": phase["stored_samples_per_s"],
        "keeps_up": phase["keeps_up"],
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "cpu_ms_per_message": {
            "cassandra": _per_message_ms(cpu.get("cassandra"), stored_messages_per_s),
            "subscriber": _per_message_ms(cpu.get("naive_subscriber"), stored_messages_per_s),
        },
        "cassandra_memory_mib": phase.get("cassandra_memory_at_window_end"),
    }


def job_step_figures(result: dict[str, Any]) -> dict[str, Any]:
    """bench/job_step.py: the Python step alone, and with its writes sent by the job's writer (batches of 16)."""
    step = result["step"]["cpu_us_per_message"]
    written = (result.get("with_writes") or [{}])[0]
    with_writes = written.get("cpu_us_per_message")
    return {
        "step_cpu_us_per_message": step,
        "with_writes_cpu_us_per_message": with_writes,
        "driver_cpu_us_per_message": round(with_writes - step, 1) if with_writes is not None else None,
        "with_writes_wall_us_per_message": written.get("wall_us_per_message"),
    }


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Per side: job_step figures of every run, per fleet size the figures of every pipeline/naive phase, and the
    largest fleet whose pipeline kept up with p99 <= 2 s in every run of that size."""
    sides: dict[str, Any] = {}
    for run in report.get("runs", []):
        result = run.get("result") or {}
        side = sides.setdefault(run["side"], {"job_step": [], "fleets": {}})
        if "error" in result:
            side.setdefault("errors", []).append({"step": run["step"], "vehicles": run["vehicles"],
                                                  "error": result["error"]})  # fmt: skip
            continue
        if run["step"] == "job_step":
            side["job_step"].append(job_step_figures(result))
            continue
        for entry in result.get("runs", []):
            fleet = side["fleets"].setdefault(str(entry["vehicles"]), {"pipeline": [], "naive": []})
            if "pipeline" in entry:
                fleet["pipeline"].append(pipeline_figures(entry["pipeline"]))
            if "naive" in entry:
                fleet["naive"].append(naive_figures(entry["naive"]))
    for side in sides.values():
        side["largest_fleet_p99_within_2s"] = largest_fleet_within_target(side["fleets"])
    return sides


def largest_fleet_within_target(fleets: dict[str, Any]) -> int | None:
    passing = [
        int(size)
        for size, fleet in fleets.items()
        if fleet["pipeline"]
        and all(run["keeps_up"] and (run["p99_ms"] or float("inf")) <= P99_TARGET_MS for run in fleet["pipeline"])
    ]
    return max(passing, default=None)


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}"


def _n(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """Tables for bench/README.md: one row per side and fleet size (and per job_step run)."""
    sides = report.get("summary") or summary(report)
    lines = [
        "| vehicles | Cassandra | pipeline stored samples/s (acked) | p50 / p99 s (polled) | CPU ms/msg: stack,"
        " Cassandra, TaskManagers | machine cores (other) | Cassandra RSS / heap used of total MiB | naive stored"
        " samples/s | naive p50 / p99 s | naive Cassandra CPU ms/msg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sizes = sorted({int(size) for side in sides.values() for size in side["fleets"]})
    for size in sizes:
        for label, side in sides.items():
            fleet = side["fleets"].get(str(size), {"pipeline": [], "naive": []})
            for i in range(max(len(fleet["pipeline"]), len(fleet["naive"]))):
                p = fleet["pipeline"][i] if i < len(fleet["pipeline"]) else None
                n = fleet["naive"][i] if i < len(fleet["naive"]) else None
                cells = [f"{size:,}", label]
                if p:
                    cpu, mem = p["cpu_ms_per_message"], p["cassandra_memory_mib"] or {}
                    cells += [
                        f"{p['stored_samples_per_s']:,.0f} ({_n(p['acked_samples_per_s'], 0)})"
                        + ("" if p["keeps_up"] else ", falls behind"),
                        f"{_s(p['p50_ms'])} / {_s(p['p99_ms'])} ({_s(p['polled_p50_ms'])} / {_s(p['polled_p99_ms'])})",
                        f"{_n(cpu['stack'])}, {_n(cpu['cassandra'])}, {_n(cpu['flink_taskmanagers'])}",
                        f"{_n(p['machine_busy_cores'])} ({_n(p['other_cores'])})",
                        f"{_n(mem.get('rss_mib'), 0)} / {_n(mem.get('heap_used_mib'), 0)} of"
                        f" {_n(mem.get('heap_total_mib'), 0)}",
                    ]
                else:
                    cells += ["-"] * 5
                if n:
                    cells += [f"{n['stored_samples_per_s']:,.0f}", f"{_s(n['p50_ms'])} / {_s(n['p99_ms'])}",
                              _n(n["cpu_ms_per_message"]["cassandra"])]  # fmt: skip
                else:
                    cells += ["-"] * 3
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| Cassandra | job_step: step alone µs/msg | with writes (batches of 16) µs/msg | driver µs/msg |"
              " wall with writes µs/msg |", "|---|---|---|---|---|"]  # fmt: skip
    for label, side in sides.items():
        for run in side["job_step"]:
            lines.append(f"| {label} | {_n(run['step_cpu_us_per_message'], 1)} | "
                         f"{_n(run['with_writes_cpu_us_per_message'], 1)} | {_n(run['driver_cpu_us_per_message'], 1)}"
                         f" | {_n(run['with_writes_wall_us_per_message'], 1)} |")  # fmt: skip
    lines += [""] + [
        f"- Cassandra {label}: largest fleet with p99 <= 2 s: {side['largest_fleet_p99_within_2s'] or 'none measured'}"
        + "".join(f"; failed: {e['step']} {e['vehicles']}: {e['error'][:100]}" for e in side.get("errors", []))
        for label, side in sides.items()
    ]
    return "\n".join(lines)
