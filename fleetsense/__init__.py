"""fleetsense: edge-to-cloud driver-behaviour telemetry for vehicle fleets."""

__version__ = "0.1.0"
