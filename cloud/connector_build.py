"""Builds the Flink AMQP source connector jar with Maven (cloud/connector/pom.xml).

`mvn package` compiles the connector against Flink 1.20.3 (provided: the cluster's flink-dist has it) and shades
the RabbitMQ Java client from Maven Central into the jar, relocated so it cannot clash. Maven's local repository
(~/.m2/repository unless the user's Maven settings say otherwise) caches every artifact: Maven runs offline
first and goes online only when something is missing from it, so only the first build needs the network.

The javac helpers below the Maven part (JAVA_RELEASE, find_javac, flink_jars, is_up_to_date) serve the stack's
small in-line Java builds (fleetsense/stack/prometheus_reporter.py), which compile against the wheel's jars.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from fleetsense.errors import FleetsenseError

JAR_NAME = "fleetsense-flink-amqp.jar"
CONNECTOR_DIR = Path(__file__).resolve().parent / "connector"
POM = CONNECTOR_DIR / "pom.xml"
SOURCE_ROOT = CONNECTOR_DIR / "src" / "main"
# Maven's own output (classes, test reports, the shaded jar) goes to <out_dir>/MAVEN_DIR_NAME, not into the
# source tree (which is read-only in an installed package); the jar is then copied to <out_dir>/JAR_NAME.
MAVEN_DIR_NAME = "connector-maven"
# The first build downloads Flink's and the client's jars and Maven's plugins (~40 s here); later ones ~10 s.
MAVEN_TIMEOUT_S = 900
# Maven's message when an offline build misses an artifact: then, and only then, it runs again online.
_OFFLINE_MISS = "offline mode"
# Flink 1.20 runs on Java 11 and 17; compiling for 11 keeps the jar usable on both (the pom says the same).
JAVA_RELEASE = "11"
JAVAC_TIMEOUT_S = 300


def default_out_dir() -> Path:
    """<repo>/build in a source checkout, else ./build (an installed package has no repo root)."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "build"
    return Path.cwd() / "build"


def build_inputs() -> list[Path]:
    """What the jar is made of: the pom and the main Java sources (the tests do not change the jar)."""
    sources = sorted(SOURCE_ROOT.rglob("*.java"))
    if not sources or not POM.is_file():
        raise FleetsenseError(
            f"no connector pom.xml or Java sources under {CONNECTOR_DIR}",
            hint="reinstall fleetsense from a complete checkout (the connector sources ship as package data)",
        )
    return [POM, *sources]


def find_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FleetsenseError(
            "mvn not found (Maven builds the AMQP connector from cloud/connector/pom.xml)",
            hint="apt-get install maven (and a JDK 11+: openjdk-17-jdk-headless), or put mvn on PATH",
        )
    return mvn


def maven_command(mvn: str, maven_dir: Path, goals: Sequence[str], *, offline: bool) -> list[str]:
    """The mvn command line: batch mode, quiet, the project's pom, output under `maven_dir`."""
    return [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        *(["-o"] if offline else []),
        "-f",
        str(POM),
        f"-Dfleetsense.buildDir={maven_dir}",
        *goals,
    ]


def run_maven(maven_dir: Path, goals: Sequence[str], *, what: str) -> None:
    """Run Maven offline; online once more only if the offline run missed an artifact."""
    mvn = find_mvn()
    output = ""
    for offline in (True, False):
        cmd = maven_command(mvn, maven_dir, goals, offline=offline)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FleetsenseError(f"could not run Maven ({what}): {exc}", hint="check the Maven installation") from exc
        if done.returncode == 0:
            return
        output = (done.stdout + done.stderr).strip()
        if _OFFLINE_MISS not in output:
            break
    raise FleetsenseError(
        f"{what} failed (mvn {' '.join(goals)}):\n{output}",
        hint="fix cloud/connector (Java sources, tests or pom.xml); a first build needs Maven Central "
        "(https://repo.maven.apache.org) to fill ~/.m2/repository",
    )


def build_connector_jar(out_dir: Path, *, force: bool = False) -> Path:
    """Build the shaded connector jar with `mvn package` and write <out_dir>/fleetsense-flink-amqp.jar.

    Skips the work when the jar is newer than the pom and every main Java source, unless `force`. The JUnit
    tests are not run here (run_connector_tests runs them; the README's test command does).
    """
    inputs = build_inputs()
    target = out_dir / JAR_NAME
    if not force and is_up_to_date(target, inputs):
        return target
    maven_dir = out_dir / MAVEN_DIR_NAME
    run_maven(maven_dir, ["-DskipTests", "package"], what="building the AMQP connector")
    built = maven_dir / JAR_NAME
    if not built.is_file():
        raise FleetsenseError(f"Maven reported success but wrote no {built}", hint="check cloud/connector/pom.xml")
    # Copy beside the target and rename, so a reader never sees a half-written jar.
    fd, partial_name = tempfile.mkstemp(prefix=JAR_NAME, suffix=".partial", dir=out_dir)
    os.close(fd)
    partial = Path(partial_name)
    try:
        shutil.copyfile(built, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def run_connector_tests(out_dir: Path) -> None:
    """The connector's JUnit tests (cloud/connector/src/test/java), `mvn test`."""
    build_inputs()
    run_maven(out_dir / MAVEN_DIR_NAME, ["test"], what="the AMQP connector's JUnit tests")


def flink_jars() -> list[Path]:
    """The jars of the Flink distribution that ships inside the apache-flink package."""
    try:
        import pyflink
    except ImportError as exc:
        raise FleetsenseError(
            "pyflink is not installed, so there are no Flink jars to compile against",
            hint="pip install -e '.[cloud]' (installs apache-flink==1.20.3)",
        ) from exc
    lib = Path(pyflink.__file__).resolve().parent / "lib"
    jars = sorted(lib.glob("*.jar"))
    if not any(j.name.startswith("flink-dist") for j in jars):
        raise FleetsenseError(
            f"no flink-dist jar in {lib}",
            hint="reinstall apache-flink: pip install --force-reinstall apache-flink==1.20.3",
        )
    return jars


def find_javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return str(Path(java_home) / "bin" / "javac")
    javac = shutil.which("javac")
    if javac is None:
        raise FleetsenseError(
            "javac not found (a JDK is needed to build the stack's Java parts, a JRE is not enough)",
            hint="apt-get install openjdk-17-jdk-headless, or set JAVA_HOME to a JDK 11+",
        )
    return javac


def is_up_to_date(jar: Path, inputs: Iterable[Path]) -> bool:
    if not jar.is_file():
        return False
    built = jar.stat().st_mtime
    return all(p.stat().st_mtime < built for p in inputs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleetsense.cloud.connector_build",
        description="Build the Flink AMQP source connector jar with Maven, or run its JUnit tests.",
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <repo>/build)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the jar is up to date")
    parser.add_argument("--test", action="store_true", help="run the connector's JUnit tests (mvn test) instead")
    args = parser.parse_args(argv)
    out_dir = args.out or default_out_dir()
    try:
        if args.test:
            run_connector_tests(out_dir)
            print("connector JUnit tests passed")
            return 0
        jar = build_connector_jar(out_dir, force=args.force)
    except FleetsenseError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    print(jar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
