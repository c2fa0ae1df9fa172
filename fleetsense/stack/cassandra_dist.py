"""The local stack's Apache Cassandra as jars from Maven Central, and the java command line that runs it.

cassandra_runtime/pom.xml lists org.apache.cassandra:cassandra-all (its version is declared there only); `mvn
dependency:copy-dependencies` copies it and its runtime dependencies into build/cassandra/<version>/lib. Maven keeps
what it downloaded in its local repository (~/.m2), and a complete lib directory is never fetched again: `stack
prepare` is offline after its first run. There is no distribution tarball, so no bin/cassandra: we build the java
command ourselves, with the flags Cassandra's own conf/jvm17-server.options passes on Java 17.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from importlib import resources
from pathlib import Path

from fleetsense.errors import StackError
from fleetsense.stack import process
from fleetsense.stack.layout import StackConfig

POM_NAMESPACE = {"m": "http://maven.apache.org/POM/4.0.0"}
MAIN_ARTIFACT = "cassandra-all"
# A runtime dependency of cassandra-all that is also the JVM's -javaagent, as Cassandra's own scripts pass it: it
# measures objects (memtables, caches, prepared statements) through Instrumentation. Without the agent 5.0.9 still
# started here (jamm 0.4 falls back to Unsafe-based estimates), so the agent is for fidelity, not for starting.
JAMM_PREFIX = "jamm-"

# From Cassandra 5.0's conf/jvm17-server.options, "JPMS" and "Netty" sections. Without them 5.0.9 dies at once:
# "FATAL: Cassandra is unable to access required classes" (IllegalAccessException on sun.nio.ch.DirectBuffer.cleaner
# in FileUtils' static initialiser), exit code 3.
JAVA17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *[
        f"--add-exports={export}=ALL-UNNAMED"
        for export in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ],
    *[
        f"--add-opens={package}=ALL-UNNAMED"
        for package in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
        )
    ],
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
]


def runtime_pom() -> Path:
    return Path(str(resources.files("fleetsense.stack").joinpath("cassandra_runtime/pom.xml")))


def declared_version(pom_xml: str) -> str:
    """The cassandra-all version a pom declares."""
    root = ElementTree.fromstring(pom_xml)
    for dependency in root.iterfind("m:dependencies/m:dependency", POM_NAMESPACE):
        if dependency.findtext("m:artifactId", namespaces=POM_NAMESPACE) == MAIN_ARTIFACT:
            version = dependency.findtext("m:version", namespaces=POM_NAMESPACE)
            if version:
                return version.strip()
    raise StackError(f"the pom declares no {MAIN_ARTIFACT} version", hint=f"fix {runtime_pom()}")


def cassandra_version() -> str:
    return declared_version(runtime_pom().read_text())


def lib_dir(config: StackConfig) -> Path:
    return config.build_dir / "cassandra" / cassandra_version() / "lib"


def complete(lib: Path, version: str) -> bool:
    """Whether `lib` holds a finished copy: mvn copies into a staging directory that is renamed only on success."""
    return (lib / f"{MAIN_ARTIFACT}-{version}.jar").is_file() and any(lib.glob(f"{JAMM_PREFIX}*.jar"))


def install_distribution(config: StackConfig) -> Path:
    """cassandra-all and its runtime dependencies in lib_dir(config), fetched with mvn on the first call only."""
    version = cassandra_version()
    lib = lib_dir(config)
    if complete(lib, version):
        return lib
    mvn = process.require_binary("mvn", hint="install Maven: `apt-get install maven`")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    done = subprocess.run(
        [
            mvn,
            "--batch-mode",
            "--quiet",
            "--file",
            str(runtime_pom()),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not complete(staging, version):
        raise StackError(
            f"could not fetch org.apache.cassandra:{MAIN_ARTIFACT}:{version} and its dependencies with mvn: "
            f"{(done.stdout + done.stderr).strip()[-800:]}",
            hint="check that Maven Central is reachable (`mvn -v`; proxy settings in ~/.m2/settings.xml)",
        )
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def jamm_agent(lib: Path) -> Path:
    jars = sorted(lib.glob(f"{JAMM_PREFIX}*.jar"))
    if not jars:
        raise StackError(f"no jamm jar in {lib}", hint="run `fleetsense stack prepare` again")
    return jars[-1]


def release_line(version: str) -> str:
    """A release's major.minor ("5.0" of "5.0.9"): patch releases of one line read each other's data files."""
    return ".".join(version.split(".")[:2])


def data_dir_problem(recorded: str | None, has_data: bool, version: str) -> str | None:
    """Why a node of `version` must not start on a data directory that `recorded` (its release file, None when
    missing) last ran, or None. Data without a release file was written by the stack's earlier Cassandra 2.1,
    whose files 5.0 cannot read (an upgrade steps through 3.x and 4.x; a local stack's data is not worth it)."""
    if not has_data:
        return None
    if recorded is None:
        return f"it holds data of an older Cassandra (2.1, before the stack recorded releases), not of {version}"
    if release_line(recorded) != release_line(version):
        return f"it holds data of Cassandra {recorded}, and this stack runs {version}"
    return None
