package io.fleetsense.flink.cassandra;

import java.io.IOException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Writes sent asynchronously, at most {@code maxInFlight} at once: {@link #submit} blocks while that many are
 * unacknowledged (back-pressure reaches Flink's input), a retryable failure is sent again after a doubling
 * back-off, and the first write that fails for good (not retryable, or {@code attempts} failures) fails the
 * writer: the next {@link #submit} or {@link #flush} throws, Flink restarts the job from its last checkpoint and
 * the broker redelivers what it had not acknowledged (every write is idempotent). {@link #flush} returns once
 * every write submitted so far is acknowledged. A write may carry an {@code onStored} action, run once when (and
 * only if) the write is acknowledged, on the thread that completed it: it must be quick and must not block (the
 * live-event publisher only queues a message). No Flink or driver type here, so JUnit tests it alone.
 */
final class AsyncWrites<W> {
    private static final long MAX_BACKOFF_MS = 10_000;

    private final Function<W, CompletionStage<?>> execute;
    private final Predicate<Throwable> retryable;
    private final ScheduledExecutorService retryTimer;
    private final int maxInFlight;
    private final int attempts;
    private final long firstBackoffMs;
    private final Semaphore permits;
    private final AtomicReference<IOException> failure = new AtomicReference<>();
    final AtomicLong acknowledged = new AtomicLong();
    final AtomicLong retries = new AtomicLong();

    AsyncWrites(Function<W, CompletionStage<?>> execute, Predicate<Throwable> retryable,
            ScheduledExecutorService retryTimer, int maxInFlight, int attempts, long firstBackoffMs) {
        if (maxInFlight < 1 || attempts < 1 || firstBackoffMs < 0) {
            throw new IllegalArgumentException("maxInFlight " + maxInFlight + ", attempts " + attempts
                    + ", firstBackoffMs " + firstBackoffMs + ": the first two must be at least 1, the last >= 0");
        }
        this.execute = execute;
        this.retryable = retryable;
        this.retryTimer = retryTimer;
        this.maxInFlight = maxInFlight;
        this.attempts = attempts;
        this.firstBackoffMs = firstBackoffMs;
        this.permits = new Semaphore(maxInFlight);
    }

    /** Send {@code write}, first waiting for a free slot; throws if an earlier write failed for good. */
    void submit(W write) throws IOException, InterruptedException {
        submit(write, null);
    }

    /** As {@link #submit(Object)}, and {@code onStored} (null: nothing) runs once the write is acknowledged. */
    void submit(W write, Runnable onStored) throws IOException, InterruptedException {
        throwIfFailed();
        permits.acquire();
        send(write, onStored, 1);
    }

    /** Wait until every submitted write is acknowledged (or one failed for good: then throw). */
    void flush() throws IOException, InterruptedException {
        permits.acquire(maxInFlight);
        permits.release(maxInFlight);
        throwIfFailed();
    }

    int inFlight() {
        return maxInFlight - permits.availablePermits();
    }

    long backoffMs(int attempt) {
        return Math.min(MAX_BACKOFF_MS, firstBackoffMs << Math.min(attempt - 1, 20));
    }

    private void throwIfFailed() throws IOException {
        IOException failed = failure.get();
        if (failed != null) {
            throw failed;
        }
    }

    private void send(W write, Runnable onStored, int attempt) {
        CompletionStage<?> sent;
        try {
            sent = execute.apply(write);
        } catch (RuntimeException e) {
            sent = CompletableFuture.failedFuture(e);
        }
        sent.whenComplete((ignored, error) -> {
            if (error == null) {
                acknowledged.incrementAndGet();
                runQuietly(onStored); // before the permit: once flush returns, every action has run
                permits.release();
            } else {
                onFailure(write, onStored, attempt, error instanceof CompletionException && error.getCause() != null
                        ? error.getCause() : error);
            }
        });
    }

    /** An action's failure is its own (the live feed is best effort): it never fails the write it follows. */
    private static void runQuietly(Runnable onStored) {
        if (onStored == null) {
            return;
        }
        try {
            onStored.run();
        } catch (RuntimeException ignored) {
            // Counted by the action itself where it matters (EventPublisher counts what it drops).
        }
    }

    private void onFailure(W write, Runnable onStored, int attempt, Throwable error) {
        if (attempt < attempts && retryable.test(error) && failure.get() == null) {
            retries.incrementAndGet();
            try {
                retryTimer.schedule(() -> send(write, onStored, attempt + 1), backoffMs(attempt),
                        TimeUnit.MILLISECONDS);
                return;
            } catch (RejectedExecutionException closing) {
                error.addSuppressed(closing);
            }
        }
        String why = retryable.test(error) ? "still failing after " + attempt + " attempt(s)" : "not retryable";
        failure.compareAndSet(null, new IOException("a Cassandra write failed (" + why + "): " + error
                + "; the job restarts from its last checkpoint and the broker redelivers", error));
        permits.release();
    }
}
