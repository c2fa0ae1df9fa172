package io.fleetsense.flink.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/**
 * The live-event publisher's policy when the broker is down or goes away: the caller is never blocked, what cannot
 * be published is dropped and counted, and the connection comes back after a doubling back-off.
 */
class EventPublisherTest {
    private final AtomicLong clockMs = new AtomicLong(1_000_000);
    private final AtomicBoolean brokerUp = new AtomicBoolean(false);
    private final AtomicInteger opens = new AtomicInteger();
    private final List<String> received = new CopyOnWriteArrayList<>();

    private EventPublisher.Channel channel() {
        return new EventPublisher.Channel() {
            @Override
            public void publish(String routingKey, EventMessage message) throws IOException {
                if (!brokerUp.get()) {
                    throw new IOException("connection reset");
                }
                received.add(routingKey);
            }

            @Override
            public void close() {}
        };
    }

    private EventPublisher publisher(int queueSize) {
        return new EventPublisher(() -> {
            opens.incrementAndGet();
            if (!brokerUp.get()) {
                throw new IOException("connection refused");
            }
            return channel();
        }, queueSize, 100, clockMs::get, "test-publisher");
    }

    private static EventMessage event(int i) {
        return EventMessage.of("v" + i, "harsh_brake", i, i + 1, 1, 0.5f, "g", i + 2);
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(5);
        }
    }

    @Test
    void withTheBrokerDownOffersReturnAtOnceAndEveryEventIsCountedAsDropped() throws Exception {
        try (EventPublisher publisher = publisher(100)) {
            long started = System.nanoTime();
            for (int i = 0; i < 10_000; i++) {
                publisher.offer(event(i));
            }
            assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) < 1_000, "offer blocked");
            await(() -> publisher.queued() == 0, "the queue to drain");
            assertEquals(10_000, publisher.dropped.get());
            assertEquals(0, publisher.published.get());
            assertFalse(publisher.connected());
        }
    }

    @Test
    void itReconnectsAfterADoublingBackOffAndPublishesAgain() throws Exception {
        try (EventPublisher publisher = publisher(100)) {
            await(() -> opens.get() == 1, "the first connection attempt");
            Thread.sleep(300);
            assertEquals(1, opens.get(), "tried again before its back-off (100 ms of the test's clock)");
            clockMs.addAndGet(100);
            await(() -> opens.get() == 2, "the second attempt");
            clockMs.addAndGet(100);
            Thread.sleep(300);
            assertEquals(2, opens.get(), "the back-off did not double");
            brokerUp.set(true);
            clockMs.addAndGet(100);
            await(publisher::connected, "the reconnection");
            publisher.offer(event(1));
            await(() -> received.size() == 1, "the event's publication");
            assertEquals(List.of("harsh_brake.v1"), received);
        }
    }

    @Test
    void aBrokerThatGoesAwayCostsTheEventInFlightAndIsReconnected() throws Exception {
        brokerUp.set(true);
        try (EventPublisher publisher = publisher(100)) {
            await(publisher::connected, "the connection");
            brokerUp.set(false);
            publisher.offer(event(1));
            await(() -> !publisher.connected(), "the lost connection to be noticed");
            assertEquals(1, publisher.dropped.get());
            brokerUp.set(true);
            clockMs.addAndGet(100);
            await(publisher::connected, "the reconnection");
            publisher.offer(event(2));
            await(() -> received.size() == 1, "the next event's publication");
            assertEquals(List.of("harsh_brake.v2"), received);
        }
    }

    @Test
    void theRealClientAgainstAPortNobodyListensOnNeverBlocksTheCaller() throws Exception {
        int port;
        try (ServerSocket socket = new ServerSocket(0)) {
            port = socket.getLocalPort(); // closed again: connections to it are refused
        }
        LiveEvents settings = new LiveEvents("127.0.0.1", port, "fleet", "user", "secret", 5, "fleet.events",
                "event_by_vehicle");
        try (EventPublisher publisher = new EventPublisher(settings.connector("test"), 10, 100,
                System::currentTimeMillis, "test-real-publisher")) {
            long started = System.nanoTime();
            for (int i = 0; i < 1_000; i++) {
                publisher.offer(event(i));
            }
            assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) < 500, "offer blocked");
            await(() -> publisher.connectFailures.get() >= 1, "a refused connection");
            await(() -> publisher.queued() == 0, "the queue to drain");
            assertEquals(1_000, publisher.dropped.get());
        }
    }

    @Test
    void itsSettingsNeverShowThePassword() {
        LiveEvents settings = new LiveEvents("a,b", 5672, "fleet", "fleetsense-flink", "hunter2", 5, "fleet.events",
                "event_by_vehicle");
        assertFalse(settings.toString().contains("hunter2"), settings.toString());
    }
}
