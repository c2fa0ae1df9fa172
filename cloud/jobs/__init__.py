"""PyFlink job entry points, submitted with `fleetsense job submit`.

The job modules import pyflink at top level; this package itself does not, so callers can locate the
job files without a JVM.
"""

from pathlib import Path


def telemetry_ingest_path() -> Path:
    return Path(__file__).with_name("telemetry_ingest.py")
