package io.fleetsense.flink.cassandra;

import java.io.IOException;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Publishes the live feed's messages best effort, on a thread of its own, so the broker can never fail or slow the
 * Cassandra writes: {@link #offer} only queues (a full queue drops the message and counts it), the thread publishes
 * through one connection, and while that connection is down every message is dropped and counted, and a new one is
 * tried after a back-off that doubles up to {@link #MAX_BACKOFF_MS}. No confirms: a live event lost here is still
 * in Cassandra, where the API's resume and its lists read it. The broker is behind {@link Connector}, so JUnit tests
 * the policy without one.
 */
final class EventPublisher implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(EventPublisher.class);
    static final long MAX_BACKOFF_MS = 30_000;
    private static final long POLL_MS = 100;

    /** One open channel: publish to the exchange, or throw when the connection is gone. */
    interface Channel extends AutoCloseable {
        void publish(String routingKey, EventMessage message) throws IOException;

        @Override
        void close();
    }

    /** Opens a channel to the broker (a new connection), or throws. */
    interface Connector {
        Channel open() throws IOException;
    }

    private final Connector connector;
    private final BlockingQueue<EventMessage> queue;
    private final LongSupplier clockMillis;
    private final long firstBackoffMs;
    private final Thread thread;
    private volatile boolean closed;
    private volatile Channel channel; // only the publishing thread changes it
    private long backoffMs;
    private long nextAttemptMs;
    final AtomicLong published = new AtomicLong();
    final AtomicLong dropped = new AtomicLong();
    final AtomicLong connectFailures = new AtomicLong();

    EventPublisher(Connector connector, int queueSize, long firstBackoffMs, LongSupplier clockMillis, String name) {
        if (queueSize < 1 || firstBackoffMs < 1) {
            throw new IllegalArgumentException("queueSize " + queueSize + ", firstBackoffMs " + firstBackoffMs
                    + ": both must be at least 1");
        }
        this.connector = connector;
        this.queue = new ArrayBlockingQueue<>(queueSize);
        this.clockMillis = clockMillis;
        this.firstBackoffMs = firstBackoffMs;
        this.backoffMs = firstBackoffMs;
        this.thread = new Thread(this::run, name);
        thread.setDaemon(true);
        thread.start();
    }

    /** Queue {@code message} for publication; never blocks. False (and counted) when the queue is full. */
    boolean offer(EventMessage message) {
        if (closed || !queue.offer(message)) {
            dropped.incrementAndGet();
            return false;
        }
        return true;
    }

    /** Messages queued and not yet published or dropped. */
    int queued() {
        return queue.size();
    }

    boolean connected() {
        return channel != null;
    }

    private void run() {
        while (!closed) {
            try {
                if (channel == null && clockMillis.getAsLong() >= nextAttemptMs) {
                    connect();
                }
                EventMessage message = queue.poll(POLL_MS, TimeUnit.MILLISECONDS);
                if (message != null) {
                    publish(message);
                }
            } catch (InterruptedException e) {
                break;
            } catch (RuntimeException e) {
                LOG.warn("live-event publisher: unexpected {}", e.toString());
            }
        }
        closeChannel();
    }

    private void connect() {
        try {
            channel = connector.open();
            backoffMs = firstBackoffMs;
            LOG.info("live-event publisher connected");
        } catch (IOException | RuntimeException e) {
            connectFailures.incrementAndGet();
            LOG.warn("live-event publisher cannot connect ({}); events are dropped until it can, next try in {} ms",
                    e.toString(), backoffMs);
            waitBeforeNextAttempt();
        }
    }

    private void publish(EventMessage message) {
        if (channel == null) {
            dropped.incrementAndGet();
            return;
        }
        try {
            channel.publish(message.routingKey, message);
            published.incrementAndGet();
        } catch (IOException | RuntimeException e) {
            // amqp-client throws AlreadyClosedException (a RuntimeException) once the connection or channel is gone.
            dropped.incrementAndGet();
            LOG.warn("live-event publisher lost its connection ({}); reconnecting in {} ms", e.toString(), backoffMs);
            closeChannel();
            waitBeforeNextAttempt();
        }
    }

    private void waitBeforeNextAttempt() {
        nextAttemptMs = clockMillis.getAsLong() + backoffMs;
        backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
    }

    private void closeChannel() {
        if (channel != null) {
            try {
                channel.close();
            } catch (RuntimeException ignored) {
                // Closing a dead connection: nothing left to do.
            }
            channel = null;
        }
    }

    /** Stop the thread (what is still queued is dropped) and close the connection. */
    @Override
    public void close() {
        closed = true;
        thread.interrupt();
        try {
            thread.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        dropped.addAndGet(queue.size());
        queue.clear();
    }
}
