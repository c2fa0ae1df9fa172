package io.fleetsense.flink.cassandra;

import java.util.function.LongSupplier;

/**
 * Client-side write timestamps (µs since 1970), strictly increasing within one writer: every write gets one when
 * it is first sent and keeps it through its retries. Of two writes of a row that are in flight at once, the one
 * sent later carries the larger timestamp, so Cassandra keeps it whichever arrives (or is retried) last. The
 * driver's own AtomicTimestampGenerator does the same per session; it is done here so a retry provably reuses the
 * first attempt's timestamp (docs/cloud-etl.md, "Write order").
 */
final class WriteTimestamps {
    private final LongSupplier clockMillis;
    private long last = Long.MIN_VALUE;

    WriteTimestamps(LongSupplier clockMillis) {
        this.clockMillis = clockMillis;
    }

    /** The clock in µs, or one more than the last timestamp if the clock has not moved past it (same ms, or back). */
    long next() {
        long now = clockMillis.getAsLong() * 1000;
        last = now > last ? now : last + 1;
        return last;
    }
}
