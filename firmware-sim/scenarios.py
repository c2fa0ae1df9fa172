"""Named drives with known ground truth, shared by the analytics unit tests and the end-to-end tests."""

from __future__ import annotations

from fleetsense.sim.drive_script import DriveScript


def harsh_events_drive() -> DriveScript:
    """3 harsh brakes, 2 harsh accelerations, 2 sharp corners, 1 stop and 1 bump, between ordinary driving that
    goes close to the simulator's ordinary limits (0.25 g longitudinal, 0.3 g lateral). It starts moving at once,
    so the first harsh brake happens before the mounting can be calibrated."""
    return (
        DriveScript.builder()
        .cruise(20.0, speed_m_s=12.0)
        .corner("left", peak_g=0.28, duration_s=6.0)
        .cruise(8.0)
        .harsh_brake(peak_g=0.6)
        .stop(15.0)
        .harsh_acceleration(peak_g=0.5, duration_s=2.0)
        .cruise(10.0, speed_m_s=12.0)
        .sharp_corner("left", peak_g=0.55)
        .cruise(10.0)
        .accelerate(20.0, peak_g=0.24)
        .cruise(8.0)
        .harsh_brake(peak_g=0.7, to_speed_m_s=8.0)
        .cruise(5.0, speed_m_s=14.0)
        .corner("right", peak_g=0.28, duration_s=5.0)
        .sharp_corner("right", peak_g=0.65, duration_s=2.5)
        .cruise(6.0)
        .harsh_acceleration(peak_g=0.55, to_speed_m_s=25.0)
        .cruise(4.0)
        .bump(peak_g=1.2)
        .cruise(10.0)
        .decelerate(15.0, peak_g=0.24)
        .cruise(6.0)
        .harsh_brake(peak_g=0.8, duration_s=1.5)
        .cruise(5.0)
        .build()
    )
