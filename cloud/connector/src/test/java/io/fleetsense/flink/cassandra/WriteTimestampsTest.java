package io.fleetsense.flink.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Each write's timestamp is larger than every earlier one's, whatever the clock does (docs/cloud-etl.md). */
class WriteTimestampsTest {
    @Test
    void timestampsFollowTheClockInMicroseconds() {
        AtomicLong clockMs = new AtomicLong(1_000);
        WriteTimestamps timestamps = new WriteTimestamps(clockMs::get);
        assertEquals(1_000_000, timestamps.next());
        clockMs.set(1_005);
        assertEquals(1_005_000, timestamps.next());
    }

    @Test
    void withinOneMillisecondAndWhenTheClockStepsBackTheyStillIncrease() {
        AtomicLong clockMs = new AtomicLong(2_000);
        WriteTimestamps timestamps = new WriteTimestamps(clockMs::get);
        assertEquals(2_000_000, timestamps.next());
        assertEquals(2_000_001, timestamps.next());
        clockMs.set(1_000); // NTP stepped the clock back a second
        assertEquals(2_000_002, timestamps.next());
        clockMs.set(2_001);
        assertEquals(2_001_000, timestamps.next());
    }
}
