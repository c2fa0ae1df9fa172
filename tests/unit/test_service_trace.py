"""An event's trace (service/trace.py) against the simulator's ground truth: a drive with a random mounting and
datasheet-typical sensor biases, cut into 1 s wire batches, calibrated from a context around each event the way the
job calibrates, and rotated into the vehicle frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fleetsense.cloud.decode import decode_batch
from fleetsense.service import trace as tr

from fleetsense import wire
from tests.unit.test_analytics_drives import PERIOD_US, Recording, feed, scripted_recording

G = 9.80665
ACCEL_SCALE, GYRO_SCALE = 16 * G / 32768, 0.001


def wire_batches(recording: Recording) -> list[bytes]:
    """The recording as the agent sends it: 1 s IMU batches of int16 counts (quantised as the MPU-6050's)."""
    out = []
    for seq, i in enumerate(range(0, recording.t_us.size, 100)):
        accel = np.round(recording.accel_m_s2[i : i + 100] / ACCEL_SCALE).astype(int)
        gyro = np.round(recording.gyro_rad_s[i : i + 100] / GYRO_SCALE).astype(int)
        samples = tuple(tuple(row) for row in np.hstack([accel, gyro]).tolist())
        batch = wire.Batch(
            vehicle_id="van-trace",
            seq=seq,
            start_time_us=int(recording.t_us[i]),
            sample_period_us=PERIOD_US,
            kind=wire.Kind.IMU,
            scales=(ACCEL_SCALE,) * 3 + (GYRO_SCALE,) * 3,
            samples=samples,
        )
        out.append(wire.encode(batch))
    return out


@pytest.fixture(scope="module", params=[3, 5])
def drive(request: pytest.FixtureRequest) -> tuple[Recording, list[tr.ImuBatch]]:
    recording = scripted_recording(request.param)
    return recording, tr.motion_batches(decode_batch(m) for m in wire_batches(recording))


def _context(batches: list[tr.ImuBatch], start_us: int, end_us: int) -> tuple[tr.Frame, list[tr.ImuBatch]]:
    for context_s in tr.CONTEXTS_S:
        lo, hi = tr.context_window_us(start_us, end_us, context_s)
        inside = [b for b in batches if b.end_us > lo and b.start_us < hi]
        frame = tr.calibrate(inside, "van")
        if frame.settled:
            return frame, inside
    return frame, inside


def test_every_event_s_trace_follows_the_ground_truth_in_the_vehicle_frame(
    drive: tuple[Recording, list[tr.ImuBatch]],
) -> None:
    recording, batches = drive
    events = feed(recording).events
    assert {e.kind for e in events} >= {"harsh_brake", "harsh_acceleration", "harsh_corner_left", "bump"}
    t0_us = int(recording.t_us[0])
    for event in events:
        frame, context = _context(batches, event.start_us, event.end_us)
        assert frame.settled, event
        lo, hi = tr.trace_window_us(event.start_us, event.end_us)
        trace = tr.vehicle_frame_trace(context, frame, lo, hi)
        assert trace.longitudinal_g is not None and trace.lateral_g is not None and trace.vertical_g is not None
        # Every sample of the window is there, 100 Hz, and nothing else.
        assert trace.t_us[0] >= lo and trace.t_us[-1] < hi
        assert np.all(np.diff(trace.t_us) == PERIOD_US)
        recorded_us = min(hi, batches[-1].end_us) - max(lo, batches[0].start_us)  # the drive may end sooner
        assert trace.t_us.size == recorded_us // PERIOD_US
        motion = [recording.vehicle.motion_at((t - t0_us) / 1e6) for t in trace.t_us.tolist()]
        longitudinal = np.array([m.longitudinal_m_s2 for m in motion]) / G
        lateral = np.array([m.lateral_m_s2 for m in motion]) / G
        # Low-passed, biased, quantised, with a few degrees of calibration error: within 0.05 g of the truth.
        assert np.abs(trace.longitudinal_g - longitudinal).max() < 0.05, event
        assert np.abs(trace.lateral_g - lateral).max() < 0.05, event
        inside = (trace.t_us >= event.start_us) & (trace.t_us < event.end_us)
        signal = {
            "harsh_brake": -trace.longitudinal_g,
            "harsh_acceleration": trace.longitudinal_g,
            "harsh_corner_left": trace.lateral_g,
            "harsh_corner_right": -trace.lateral_g,
            "bump": np.abs(trace.vertical_g),
        }[event.kind]
        # The trace's peak is the event's: the same filter over the same samples, in the job's frame.
        assert float(signal[inside].max()) == pytest.approx(event.peak_g, abs=0.03), event
        if event.kind != "bump":
            assert abs(float(np.median(trace.vertical_g))) < 0.03  # vertical is 0 g at rest and cruising


def test_a_context_without_rest_or_acceleration_leaves_the_frame_unknown_and_the_arrays_empty(
    drive: tuple[Recording, list[tr.ImuBatch]],
) -> None:
    _, batches = drive
    frame = tr.calibrate(batches[2:6], "van")  # 4 s of cruising: no rest, no pull-away
    assert not frame.settled
    trace = tr.vehicle_frame_trace(batches[2:6], frame, batches[3].start_us, batches[5].start_us)
    assert trace.longitudinal_g is None and trace.lateral_g is None and trace.vertical_g is None
    assert trace.t_us.size == 200


def test_a_missing_batch_is_a_gap_in_the_trace_not_a_bridge(drive: tuple[Recording, list[tr.ImuBatch]]) -> None:
    _, batches = drive
    holed = batches[:40] + batches[41:]
    frame = tr.calibrate(holed, "van")
    trace = tr.vehicle_frame_trace(holed, frame, batches[35].start_us, batches[45].start_us)
    steps = np.diff(trace.t_us)
    assert steps.max() == 101 * PERIOD_US and np.count_nonzero(steps != PERIOD_US) == 1


def test_motion_batches_drop_the_barometer_and_duplicates_and_sort_by_time() -> None:
    recording = scripted_recording(3)
    messages = wire_batches(recording)[:5]
    baro = wire.encode(
        wire.Batch(
            vehicle_id="van-trace",
            seq=99,
            start_time_us=int(recording.t_us[0]),
            sample_period_us=100_000,
            kind=wire.Kind.BARO,
            scales=(1.0, 0.01),
            samples=((1000, 2000),) * 10,
        )
    )
    decoded = [decode_batch(m) for m in [messages[3], baro, *messages, messages[1]]]
    batches = tr.motion_batches(decoded)
    assert [b.start_us for b in batches] == sorted({int(recording.t_us[i * 100]) for i in range(5)})
    assert all(b.accel_m_s2.shape == (100, 3) and b.gyro_rad_s.shape == (100, 3) for b in batches)
    # From the stored bytes: a message that does not decode is skipped, and only batches with samples in the window.
    within = tr.batches_within([b"not a batch", *messages, baro], batches[1].end_us - 1, batches[3].start_us + 1)
    assert [b.start_us for b in within] == [b.start_us for b in batches[1:4]]


def _client() -> Any:
    import httpx
    from fleetsense.service.app import create_app
    from fleetsense.service.auth import current_principal
    from fleetsense.service.roles import Principal, Role

    app = create_app(context=None)  # every request below is refused before the database is needed
    app.dependency_overrides[current_principal] = lambda: Principal("v", Role.VIEWER, "token")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/events/not-a-key/trace", 400),
        ("/v1/events/van-1/12x/harsh_brake/trace", 400),
        ("/v1/events/van-1/1/2/harsh_brake/trace", 400),
        (f"/v1/events/van-1/{10**20}/harsh_brake/trace", 400),
        ("/v1/vehicles/van-1/trips/-5", 422),
        (f"/v1/vehicles/van-1/trips/{10**20}", 422),
        ("/v1/vehicles/van-1/trips?from_ms=10&to_ms=5", 400),
        ("/v1/vehicles/van-1/scorecard?period=fortnight", 422),
        ("/v1/vehicles/van-1/scorecard?at=0001-01-01", 400),
        ("/v1/vehicles/van-1/scorecard?at=yesterday", 422),
        ("/v1/vehicles/van-1/scorecard?series=500", 422),
    ],
)
def test_bad_parameters_are_a_4xx_that_says_what_is_wrong(path: str, code: int) -> None:
    import asyncio

    async def ask() -> Any:
        async with _client() as client:
            return await client.get(path)

    response = asyncio.run(ask())
    assert response.status_code == code, response.text
    assert response.json()["detail"]


def test_the_analytic_reads_are_in_the_openapi_document_with_their_response_schemas() -> None:
    from fleetsense.service.app import create_app

    paths = create_app().openapi()["paths"]
    for path in (
        "/v1/events/{event_key}/trace",
        "/v1/vehicles/{vehicle_id}/trips",
        "/v1/vehicles/{vehicle_id}/trips/{start_ms}",
        "/v1/drivers/{driver_id}/scorecard",
        "/v1/vehicles/{vehicle_id}/scorecard",
        "/v1/leaderboards/drivers",
        "/v1/leaderboards/vehicles",
    ):
        assert "$ref" in str(paths[path]["get"]["responses"]["200"]) or "items" in str(paths[path]["get"]["responses"])


@pytest.mark.parametrize("hole", [None, 70])
def test_the_calibration_is_the_job_analyzer_s_bit_for_bit(
    drive: tuple[Recording, list[tr.ImuBatch]], hole: int | None
) -> None:
    """The trace runs the analyzer's calibration half alone; over the same batches (a missing one too) it finds the
    same frame as the whole VehicleAnalyzer the job runs."""
    from fleetsense.cloud.analytics import AnalyzerConfig, VehicleAnalyzer

    _, batches = drive
    batches = batches if hole is None else batches[:hole] + batches[hole + 1 :]
    for count in (30, 90, len(batches)):
        analyzer = VehicleAnalyzer(AnalyzerConfig(vehicle_class="van"))
        summary = None
        for i, batch in enumerate(batches[:count]):
            gap = i > 0 and batch.start_us > batches[i - 1].end_us + batches[i - 1].period_us
            summary = analyzer.on_imu(batch.t_us, batch.accel_m_s2, batch.gyro_rad_s, gap_before=gap).calibration
        frame = tr.calibrate(batches[:count], "van")
        assert summary is not None
        assert (frame.settled, frame.up_source, frame.sign_source) == (
            summary.settled, summary.up_source, summary.sign_source,
        )  # fmt: skip
        assert frame.vehicle_from_sensor == summary.vehicle_from_sensor
        assert frame.gravity_m_s2 == summary.gravity_m_s2
