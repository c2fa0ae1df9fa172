package io.fleetsense.flink.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The sink's flow control without a database: the writes' futures are completed by the test, as the driver
 * completes them when Cassandra answers.
 */
class AsyncWritesTest {
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
    /** Every send of every write, in order: (write, its future). */
    private final List<String> sent = new ArrayList<>();
    private final List<CompletableFuture<Void>> answers = new ArrayList<>();

    @AfterEach
    void stopTimer() {
        timer.shutdownNow();
    }

    private synchronized CompletionStage<?> execute(String write) {
        CompletableFuture<Void> answer = new CompletableFuture<>();
        sent.add(write);
        answers.add(answer);
        notifyAll();
        return answer;
    }

    private synchronized CompletableFuture<Void> answer(int send) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (answers.size() <= send && System.nanoTime() < deadline) {
            wait(100);
        }
        return answers.get(send);
    }

    private AsyncWrites<String> writes(int maxInFlight, int attempts) {
        return new AsyncWrites<>(this::execute, error -> error instanceof TimeoutException, timer, maxInFlight,
                attempts, 1);
    }

    @Test
    void aFullWindowBlocksTheNextWriteUntilOneIsAcknowledged() throws Exception {
        AsyncWrites<String> writes = writes(2, 1);
        writes.submit("a");
        writes.submit("b");
        assertEquals(2, writes.inFlight());
        CountDownLatch thirdSent = new CountDownLatch(1);
        Thread producer = new Thread(() -> {
            try {
                writes.submit("c");
                thirdSent.countDown();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
        producer.start();
        assertFalse(thirdSent.await(200, TimeUnit.MILLISECONDS), "a third write went out with two in flight");
        answer(0).complete(null);
        assertTrue(thirdSent.await(5, TimeUnit.SECONDS));
        producer.join();
        assertEquals(List.of("a", "b", "c"), sent);
    }

    @Test
    void flushReturnsOnlyOnceEveryWriteSentSoFarIsAcknowledged() throws Exception {
        AsyncWrites<String> writes = writes(8, 1);
        writes.submit("a");
        writes.submit("b");
        CountDownLatch flushed = new CountDownLatch(1);
        Thread checkpoint = new Thread(() -> {
            try {
                writes.flush();
                flushed.countDown();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
        checkpoint.start();
        answer(1).complete(null);
        assertFalse(flushed.await(200, TimeUnit.MILLISECONDS), "flush returned with a write unacknowledged");
        answer(0).complete(null);
        assertTrue(flushed.await(5, TimeUnit.SECONDS));
        checkpoint.join();
        assertEquals(2, writes.acknowledged.get());
    }

    @Test
    void aTimedOutWriteIsSentAgainAndCountsAsOneWrite() throws Exception {
        AsyncWrites<String> writes = writes(1, 3);
        writes.submit("a");
        answer(0).completeExceptionally(new TimeoutException("write timed out"));
        answer(1).completeExceptionally(new TimeoutException("write timed out"));
        answer(2).complete(null);
        writes.flush();
        assertEquals(List.of("a", "a", "a"), sent);
        assertEquals(2, writes.retries.get());
        assertEquals(1, writes.acknowledged.get());
    }

    @Test
    void aWriteStillFailingAfterItsAttemptsFailsTheNextFlushAndSubmit() throws Exception {
        AsyncWrites<String> writes = writes(4, 2);
        writes.submit("a");
        answer(0).completeExceptionally(new TimeoutException("write timed out"));
        answer(1).completeExceptionally(new TimeoutException("write timed out again"));
        IOException failed = assertThrows(IOException.class, writes::flush);
        assertTrue(failed.getMessage().contains("still failing after 2 attempt(s)"), failed.getMessage());
        assertTrue(failed.getMessage().contains("restarts from its last checkpoint"), failed.getMessage());
        assertThrows(IOException.class, () -> writes.submit("b"));
        assertEquals(List.of("a", "a"), sent);
    }

    @Test
    void aFailureNoRetryCanCureFailsAtOnce() throws Exception {
        AsyncWrites<String> writes = writes(4, 5);
        writes.submit("a");
        answer(0).completeExceptionally(new IllegalStateException("unconfigured table"));
        IOException failed = assertThrows(IOException.class, writes::flush);
        assertTrue(failed.getMessage().contains("not retryable"), failed.getMessage());
        assertEquals(1, sent.size());
    }

    @Test
    void anOnStoredActionRunsOnceAfterItsWriteIsAcknowledgedEvenAfterRetries() throws Exception {
        AsyncWrites<String> writes = writes(2, 3);
        java.util.concurrent.atomic.AtomicInteger stored = new java.util.concurrent.atomic.AtomicInteger();
        writes.submit("event", stored::incrementAndGet);
        answer(0).completeExceptionally(new TimeoutException("write timed out"));
        assertEquals(0, stored.get(), "published before the write was stored");
        answer(1).complete(null);
        writes.flush();
        assertEquals(1, stored.get());
    }

    @Test
    void anOnStoredActionNeverRunsForAWriteThatFailsForGood() throws Exception {
        AsyncWrites<String> writes = writes(2, 1);
        java.util.concurrent.atomic.AtomicInteger stored = new java.util.concurrent.atomic.AtomicInteger();
        writes.submit("event", stored::incrementAndGet);
        answer(0).completeExceptionally(new IllegalStateException("unconfigured table"));
        assertThrows(IOException.class, writes::flush);
        assertEquals(0, stored.get());
    }

    @Test
    void aFailingOnStoredActionNeverFailsItsWrite() throws Exception {
        AsyncWrites<String> writes = writes(2, 1);
        writes.submit("event", () -> {
            throw new IllegalStateException("the publisher broke");
        });
        answer(0).complete(null);
        writes.flush();
        assertEquals(1, writes.acknowledged.get());
    }

    @Test
    void theBackOffDoublesFromTheFirstAndIsCapped() {
        AsyncWrites<String> writes =
                new AsyncWrites<>(this::execute, error -> true, timer, 1, 30, 100);
        assertEquals(100, writes.backoffMs(1));
        assertEquals(200, writes.backoffMs(2));
        assertEquals(800, writes.backoffMs(4));
        assertEquals(10_000, writes.backoffMs(29));
    }
}
