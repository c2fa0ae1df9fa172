"""Driver-behaviour analytics for one vehicle at a time: pure numpy, no Flink, Cassandra or I/O.

`VehicleAnalyzer` (one per vehicle, picklable, small) takes decoded IMU and barometer batches and returns driving
events, trips, stops, per-minute and per-day rows and the mounting calibration. docs/analytics.md has the maths.
"""

from fleetsense.cloud.analytics.aggregates import DailyScore, MinuteAggregate
from fleetsense.cloud.analytics.calibration import CalibrationSettings, CalibrationSummary
from fleetsense.cloud.analytics.environment import EnvironmentEvent, EnvironmentSettings, altitude_m
from fleetsense.cloud.analytics.errors import AnalysisInputError
from fleetsense.cloud.analytics.events import (
    DRIVING_EVENT_KINDS,
    VEHICLE_CLASSES,
    DrivingEvent,
    EventThresholds,
    thresholds_for,
)
from fleetsense.cloud.analytics.score import ScoreWeights, driver_score
from fleetsense.cloud.analytics.trips import Stop, Trip, TripSettings
from fleetsense.cloud.analytics.vehicle_analyzer import AnalysisOutput, AnalyzerConfig, VehicleAnalyzer

__all__ = [
    "DRIVING_EVENT_KINDS",
    "VEHICLE_CLASSES",
    "AnalysisInputError",
    "AnalysisOutput",
    "AnalyzerConfig",
    "CalibrationSettings",
    "CalibrationSummary",
    "DailyScore",
    "DrivingEvent",
    "EnvironmentEvent",
    "EnvironmentSettings",
    "EventThresholds",
    "MinuteAggregate",
    "ScoreWeights",
    "Stop",
    "Trip",
    "TripSettings",
    "VehicleAnalyzer",
    "altitude_m",
    "driver_score",
    "thresholds_for",
]
