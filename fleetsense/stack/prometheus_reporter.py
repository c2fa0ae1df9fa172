"""Flink's Prometheus endpoint on loopback only: the wheel's PrometheusReporter binds every interface (it opens
`new InetSocketAddress(port)`, with no host setting in 1.20), so the stack adds a ten-line reporter that binds the
host it is given and loads both from its own plugins directory (one class loader per plugin folder, so the added
class sees the shipped reporter's package-private collector registry)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

from fleetsense.errors import StackError

PLUGIN_FOLDER = "metrics-prometheus"
JAR_NAME = "fleetsense-prometheus-host-reporter.jar"
FACTORY_CLASS = "org.apache.flink.metrics.prometheus.HostBoundPrometheusReporterFactory"
_PACKAGE_DIR = "org/apache/flink/metrics/prometheus"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# Same package as the shipped reporter: `registry` is package-private there.
_REPORTER_JAVA = """\
package org.apache.flink.metrics.prometheus;

import io.prometheus.client.exporter.HTTPServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.Iterator;

/** Flink's PrometheusReporter, bound to one host instead of every interface. Written by fleetsense. */
public class HostBoundPrometheusReporter extends AbstractPrometheusReporter {
    private final HTTPServer server;

    HostBoundPrometheusReporter(String host, Iterator<Integer> ports) {
        HTTPServer bound = null;
        IOException last = null;
        while (bound == null && ports.hasNext()) {
            int port = ports.next();
            try {
                bound = new HTTPServer(new InetSocketAddress(host, port), registry);
            } catch (IOException e) {
                last = e;  // taken by another process of the stack: try the next port of the range
            }
        }
        if (bound == null) {
            throw new RuntimeException("no free port in the Prometheus port range on " + host, last);
        }
        server = bound;
        log.info("Prometheus metrics served on {}:{}", host, server.getPort());
    }

    @Override
    public void close() {
        server.stop();
        super.close();
    }
}
"""

_FACTORY_JAVA = """\
package org.apache.flink.metrics.prometheus;

import java.util.Properties;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;
import org.apache.flink.util.NetUtils;

/** Settings: metrics.reporter.<name>.host (default 127.0.0.1) and .port (a range, as for the shipped one). */
public class HostBoundPrometheusReporterFactory implements MetricReporterFactory {
    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        MetricConfig config = (MetricConfig) properties;
        String host = config.getString("host", "127.0.0.1");
        String ports = config.getString("port", "9249");
        return new HostBoundPrometheusReporter(host, NetUtils.getPortRangeFromString(ports));
    }
}
"""


def shipped_prometheus_jar(flink_home: Path) -> Path:
    jars = sorted((flink_home / "plugins" / PLUGIN_FOLDER).glob("flink-metrics-prometheus-*.jar"))
    if not jars:
        raise StackError(
            f"no flink-metrics-prometheus jar in {flink_home / 'plugins' / PLUGIN_FOLDER}",
            hint="reinstall apache-flink: pip install --force-reinstall apache-flink==1.20.3",
        )
    return jars[-1]


def build_reporter_jar(build_dir: Path, flink_home: Path) -> Path:
    """Compile the host-bound reporter against the wheel's jars into `build_dir`; skipped when up to date."""
    from fleetsense.cloud.connector_build import JAVA_RELEASE, find_javac, flink_jars, is_up_to_date

    shipped = shipped_prometheus_jar(flink_home)
    target = build_dir / JAR_NAME
    if is_up_to_date(target, [Path(__file__), shipped]):
        return target
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleetsense-prom-") as tmp:
        src = Path(tmp) / "src" / _PACKAGE_DIR
        src.mkdir(parents=True)
        (src / "HostBoundPrometheusReporter.java").write_text(_REPORTER_JAVA)
        (src / "HostBoundPrometheusReporterFactory.java").write_text(_FACTORY_JAVA)
        classes = Path(tmp) / "classes"
        classpath = os.pathsep.join(str(p) for p in [*flink_jars(), shipped])
        cmd = [find_javac(), "--release", JAVA_RELEASE, "-nowarn", "-cp", classpath, "-d", str(classes)]
        done = subprocess.run([*cmd, *map(str, sorted(src.glob("*.java")))], capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(
                "compiling the host-bound Prometheus reporter failed:\n" + (done.stdout + done.stderr).strip(),
                hint="it compiles against apache-flink 1.20's jars; check the installed apache-flink version",
            )
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            _add(jar, "META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nCreated-By: fleetsense\r\n\r\n")
            _add(jar, "META-INF/services/org.apache.flink.metrics.reporter.MetricReporterFactory", FACTORY_CLASS)
            for path in sorted(classes.rglob("*.class")):
                _add(jar, path.relative_to(classes).as_posix(), path.read_bytes())
        os.replace(partial, target)
    return target


def _add(jar: zipfile.ZipFile, name: str, data: bytes | str) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    jar.writestr(info, data)


def link_plugins_dir(plugins_dir: Path, flink_home: Path, build_dir: Path) -> None:
    """`plugins_dir` (Flink's FLINK_PLUGINS_DIR) with the one plugin the stack uses: the shipped Prometheus
    reporter and the host-bound one side by side in one folder."""
    folder = plugins_dir / PLUGIN_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for jar in (shipped_prometheus_jar(flink_home), build_reporter_jar(build_dir, flink_home)):
        (folder / jar.name).symlink_to(jar)
