"""Builds the Flink AMQP source connector jar with the local JDK.

Maven Central is out of reach, so the jar is compiled here against PyFlink's bundled Flink jars and
Debian's RabbitMQ Java client, which is bundled into the jar (Flink provides slf4j).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from fleetsense.errors import FleetsenseError

JAR_NAME = "fleetsense-flink-amqp.jar"
AMQP_CLIENT_JAR_ENV = "FLEETSENSE_AMQP_CLIENT_JAR"
DEFAULT_AMQP_CLIENT_JAR = Path("/usr/share/java/amqp-client.jar")
SOURCE_ROOT = Path(__file__).resolve().parent / "connector" / "src"
# Flink 1.20 runs on Java 11 and 17; compiling for 11 keeps the jar usable on both.
JAVA_RELEASE = "11"
JAVAC_TIMEOUT_S = 300
# Fixed entry timestamps make the jar's bytes depend only on its contents.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_MANIFEST = "Manifest-Version: 1.0\r\nCreated-By: fleetsense connector_build\r\n\r\n"
_NOTICE = (
    "fleetsense-flink-amqp bundles the RabbitMQ Java client (com.rabbitmq:amqp-client),\n"
    "Copyright Pivotal Software, Inc., licensed MPL-1.1 or GPL-2+ or Apache-2.0.\n"
)


def default_out_dir() -> Path:
    """<repo>/build in a source checkout, else ./build (an installed package has no repo root)."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "build"
    return Path.cwd() / "build"


def java_sources() -> list[Path]:
    sources = sorted(SOURCE_ROOT.rglob("*.java"))
    if not sources:
        raise FleetsenseError(
            f"no Java sources under {SOURCE_ROOT}",
            hint="reinstall fleetsense from a complete checkout (the connector sources ship as package data)",
        )
    return sources


def amqp_client_jar() -> Path:
    jar = Path(os.environ.get(AMQP_CLIENT_JAR_ENV) or DEFAULT_AMQP_CLIENT_JAR)
    if not jar.is_file():
        raise FleetsenseError(
            f"RabbitMQ Java client jar not found at {jar}",
            hint=f"apt-get install librabbitmq-client-java, or set {AMQP_CLIENT_JAR_ENV} to an amqp-client 5.x jar",
        )
    return jar


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
            "javac not found (a JDK is needed to build the AMQP connector, a JRE is not enough)",
            hint="apt-get install openjdk-17-jdk-headless, or set JAVA_HOME to a JDK 11+",
        )
    return javac


def is_up_to_date(jar: Path, inputs: Iterable[Path]) -> bool:
    if not jar.is_file():
        return False
    built = jar.stat().st_mtime
    return all(p.stat().st_mtime < built for p in inputs)


def build_connector_jar(out_dir: Path, *, force: bool = False) -> Path:
    """Compile the connector and write <out_dir>/fleetsense-flink-amqp.jar; return its path.

    Skips the work when the jar is newer than every Java source and the amqp-client jar, unless `force`.
    """
    sources = java_sources()
    amqp_jar = amqp_client_jar()
    target = out_dir / JAR_NAME
    if not force and is_up_to_date(target, [*sources, amqp_jar]):
        return target
    javac = find_javac()
    classpath = os.pathsep.join(str(p) for p in [*flink_jars(), amqp_jar])
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleetsense-connector-") as tmp:
        classes = Path(tmp) / "classes"
        cmd = [
            javac,
            "--release",
            JAVA_RELEASE,
            "-encoding",
            "UTF-8",
            "-nowarn",
            "-cp",
            classpath,
            "-d",
            str(classes),
            *map(str, sources),
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=JAVAC_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FleetsenseError(f"could not run javac: {exc}", hint="check the JDK installation") from exc
        if result.returncode != 0:
            raise FleetsenseError(
                "compiling the AMQP connector failed:\n" + (result.stdout + result.stderr).strip(),
                hint="fix the Java sources under cloud/connector/src (they compile against apache-flink 1.20's jars)",
            )
        # Write beside the target and rename, so a reader never sees a half-written jar.
        fd, partial_name = tempfile.mkstemp(prefix=JAR_NAME, suffix=".partial", dir=out_dir)
        os.close(fd)
        partial = Path(partial_name)
        try:
            _write_fat_jar(classes, amqp_jar, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def _write_fat_jar(classes: Path, amqp_jar: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as jar:
        _add(jar, "META-INF/MANIFEST.MF", _MANIFEST.encode())
        _add(jar, "META-INF/NOTICE-amqp-client.txt", _NOTICE.encode())
        for path in sorted(p for p in classes.rglob("*") if p.is_file()):
            _add(jar, path.relative_to(classes).as_posix(), path.read_bytes())
        with zipfile.ZipFile(amqp_jar) as client:
            for name in sorted(client.namelist()):
                # version.properties: the client reads its own version from it (sent to the broker).
                wanted = name.startswith("com/rabbitmq/") or name == "version.properties"
                if wanted and not name.endswith("/"):
                    _add(jar, name, client.read(name))


def _add(jar: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    jar.writestr(info, data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleetsense.cloud.connector_build",
        description="Build the Flink AMQP source connector jar.",
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <repo>/build)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the jar is up to date")
    args = parser.parse_args(argv)
    try:
        jar = build_connector_jar(args.out or default_out_dir(), force=args.force)
    except FleetsenseError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    print(jar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
