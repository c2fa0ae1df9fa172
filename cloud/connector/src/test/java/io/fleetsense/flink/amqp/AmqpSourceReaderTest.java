package io.fleetsense.flink.amqp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.connector.source.ReaderOutput;
import org.apache.flink.api.connector.source.SourceEvent;
import org.apache.flink.api.connector.source.SourceOutput;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.io.InputStatus;
import org.apache.flink.metrics.groups.SourceReaderMetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.util.UserCodeClassLoader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The reader's emit and ack logic, driven through a scripted consumer: what it emits, when it acks (after a
 * checkpoint completes, or on emit), and that deliveries of a dead channel are never emitted nor acked.
 */
class AmqpSourceReaderTest {
    private final ScriptedConsumer consumer = new ScriptedConsumer();
    private final CollectingOutput output = new CollectingOutput();
    private AmqpSourceReader reader;

    @AfterEach
    void closeReader() {
        if (reader != null) {
            reader.close();
        }
    }

    private static AmqpConnectionConfig config(AmqpAckMode ackMode, int bundleMessages, int bundleShards) {
        return new AmqpConnectionConfig("localhost", 5672, "fleet", "flink", "secret", "telemetry", 8,
                "test", ackMode, false, bundleMessages, bundleShards, 0, 5);
    }

    private AmqpSourceReader started(AmqpConnectionConfig config) {
        reader = new AmqpSourceReader(config, new Context(), (c, name, listener, reconnects, ackFailures) -> {
            consumer.listener = listener;
            return consumer;
        });
        reader.start();
        reader.addSplits(List.of(new AmqpSplit(0)));
        assertTrue(consumer.started, "the consumer starts when the reader gets its split");
        return reader;
    }

    private void deliver(long generation, long tag, String routingKey, String body) throws InterruptedException {
        consumer.listener.onDelivery(
                new AmqpDelivery(generation, tag, routingKey, body.getBytes(StandardCharsets.UTF_8)));
    }

    private void drain() throws Exception {
        while (reader.pollNext(output) == InputStatus.MORE_AVAILABLE) {
            // keep polling until the buffer is empty
        }
    }

    @Test
    void afterCheckpointModeAcksOnlyWhenTheCheckpointCompletes() throws Exception {
        started(config(AmqpAckMode.AFTER_CHECKPOINT, 0, 1));
        deliver(1, 1, "fleet.v1.telemetry", "a");
        deliver(1, 2, "fleet.v1.telemetry", "b");
        drain();
        assertArrayEquals(AmqpEnvelope.encode("fleet.v1.telemetry", "a".getBytes(StandardCharsets.UTF_8)),
                output.records.get(0));
        assertEquals(2, output.records.size());
        assertEquals(List.of(new AmqpSplit(0)), reader.snapshotState(10));
        deliver(1, 3, "fleet.v1.telemetry", "c");
        drain();
        reader.snapshotState(11);
        assertEquals(List.of(), consumer.acks, "nothing is acked before a checkpoint completes");
        reader.notifyCheckpointComplete(10);
        assertEquals(List.of("1:2"), consumer.acks);
        reader.notifyCheckpointComplete(11);
        assertEquals(List.of("1:2", "1:3"), consumer.acks);
        reader.notifyCheckpointComplete(12);
        assertEquals(2, consumer.acks.size(), "a checkpoint with nothing new acks nothing");
    }

    @Test
    void aCheckpointTakenBeforeAChannelDiedNeverAcksOnTheNewChannel() throws Exception {
        started(config(AmqpAckMode.AFTER_CHECKPOINT, 0, 1));
        deliver(1, 5, "k", "x");
        drain();
        reader.snapshotState(1);
        consumer.generation = 2;  // the channel died and came back: tag 5 means nothing on generation 2
        reader.onChannelLost(1);
        deliver(2, 1, "k", "y");
        drain();
        reader.snapshotState(2);
        reader.notifyCheckpointComplete(2);
        assertEquals(List.of("2:1"), consumer.acks);
    }

    @Test
    void deliveriesOfADeadChannelAreDroppedNotEmitted() throws Exception {
        started(config(AmqpAckMode.AFTER_CHECKPOINT, 0, 1));
        deliver(1, 1, "k", "old");
        consumer.generation = 2;
        drain();
        assertEquals(0, output.records.size());
        deliver(1, 2, "k", "late");  // arrives after the switch: not even buffered
        deliver(2, 1, "k", "new");
        drain();
        assertEquals(1, output.records.size());
        assertArrayEquals(AmqpEnvelope.encode("k", "new".getBytes(StandardCharsets.UTF_8)), output.records.get(0));
    }

    @Test
    void onEmitModeAcksWhenTheBufferRunsDry() throws Exception {
        started(config(AmqpAckMode.ON_EMIT, 0, 1));
        deliver(1, 1, "k", "a");
        deliver(1, 2, "k", "b");
        drain();
        assertEquals("1:2", consumer.acks.get(consumer.acks.size() - 1));
    }

    @Test
    void bundleModeEmitsOneRecordPerShardInArrivalOrder() throws Exception {
        started(config(AmqpAckMode.AFTER_CHECKPOINT, 100, 16));
        deliver(1, 1, "fleet.van-7.telemetry", "1");   // shard 14
        deliver(1, 2, "fleet.ä.telemetry", "2");       // shard 3
        deliver(1, 3, "fleet.van-7.telemetry", "3");   // shard 14
        drain();
        List<AmqpDelivery> shard14 = List.of(new AmqpDelivery(1, 1, "fleet.van-7.telemetry", bytes("1")),
                new AmqpDelivery(1, 3, "fleet.van-7.telemetry", bytes("3")));
        List<AmqpDelivery> shard3 = List.of(new AmqpDelivery(1, 2, "fleet.ä.telemetry", bytes("2")));
        assertEquals(2, output.records.size());
        assertArrayEquals(AmqpBundle.encode(14, shard14), output.records.get(0));
        assertArrayEquals(AmqpBundle.encode(3, shard3), output.records.get(1));
        reader.snapshotState(1);
        reader.notifyCheckpointComplete(1);
        assertEquals(List.of("1:3"), consumer.acks, "the bundle's highest tag is acked");
    }

    @Test
    void bundleModeCutsABundleAtItsMaximumSize() throws Exception {
        started(config(AmqpAckMode.AFTER_CHECKPOINT, 2, 1));
        for (int tag = 1; tag <= 5; tag++) {
            deliver(1, tag, "fleet.v.telemetry", "m" + tag);
        }
        drain();
        assertEquals(3, output.records.size());
        assertEquals(List.of(2, 2, 1), List.of(count(0), count(1), count(2)));
    }

    @Test
    void aFatalConnectErrorFailsThePollWithAHint() {
        started(config(AmqpAckMode.AFTER_CHECKPOINT, 0, 1));
        consumer.listener.onFatalError(new IOException("ACCESS_REFUSED"));
        IOException error = assertThrows(IOException.class, () -> reader.pollNext(output));
        assertTrue(error.getMessage().contains("check the credentials"), error.getMessage());
    }

    @Test
    void theShadedClientConnectsWithoutNetty() throws Exception {
        // Netty is excluded from the jar: the client's default blocking I/O must still work. A port nobody
        // listens on gives a plain ConnectException, where a missing class would give NoClassDefFoundError.
        int port;
        try (ServerSocket socket = new ServerSocket(0)) {
            port = socket.getLocalPort();
        }
        AmqpConnectionConfig closed = new AmqpConnectionConfig("127.0.0.1", port, "/", "u", "p", "q", 8,
                "test", AmqpAckMode.ON_EMIT, false, 0, 1, 0, 5);
        assertThrows(ConnectException.class, () -> closed.newConnectionFactory().newConnection());
    }

    private int count(int record) {
        byte[] r = output.records.get(record);
        return ((r[2] & 0xff) << 8) | (r[3] & 0xff);
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Scripted stand-in for AmqpConsumerSession: records acks, lets the test switch channel generations. */
    private static final class ScriptedConsumer implements AmqpConsumer {
        AmqpConsumerSession.Listener listener;
        volatile long generation = 1;
        boolean started;
        final List<String> acks = new ArrayList<>();

        @Override
        public void start() {
            started = true;
        }

        @Override
        public long activeGeneration() {
            return generation;
        }

        @Override
        public void ack(long ackGeneration, long deliveryTag) {
            if (ackGeneration == generation) {
                acks.add(ackGeneration + ":" + deliveryTag);
            }
        }

        @Override
        public void close() {
            generation = 0;
        }
    }

    private static final class CollectingOutput implements ReaderOutput<byte[]> {
        final List<byte[]> records = new ArrayList<>();

        @Override
        public void collect(byte[] record) {
            records.add(record);
        }

        @Override
        public void collect(byte[] record, long timestamp) {
            records.add(record);
        }

        @Override
        public void emitWatermark(Watermark watermark) {}

        @Override
        public void markIdle() {}

        @Override
        public void markActive() {}

        @Override
        public SourceOutput<byte[]> createOutputForSplit(String splitId) {
            return this;
        }

        @Override
        public void releaseOutputForSplit(String splitId) {}
    }

    private static final class Context implements SourceReaderContext {
        @Override
        public SourceReaderMetricGroup metricGroup() {
            return UnregisteredMetricsGroup.createSourceReaderMetricGroup();
        }

        @Override
        public Configuration getConfiguration() {
            return new Configuration();
        }

        @Override
        public String getLocalHostName() {
            return "localhost";
        }

        @Override
        public int getIndexOfSubtask() {
            return 0;
        }

        @Override
        public void sendSplitRequest() {}

        @Override
        public void sendSourceEventToCoordinator(SourceEvent event) {}

        @Override
        public UserCodeClassLoader getUserCodeClassLoader() {
            return null;
        }
    }
}
