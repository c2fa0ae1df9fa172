package io.fleetsense.flink.amqp;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.connector.source.ReaderOutput;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.core.io.InputStatus;
import org.apache.flink.metrics.Counter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One competing consumer. Deliveries arrive on the connection's dispatch thread into a bounded FIFO;
 * Flink's task thread drains it in {@link #pollNext} and decides when to ack.
 *
 * <p>Acks in {@link AmqpAckMode#AFTER_CHECKPOINT}: {@link #snapshotState} records the highest delivery
 * tag emitted before the checkpoint barrier; {@link #notifyCheckpointComplete} acks up to the tag of the
 * highest completed checkpoint with multiple=true. Tags are per channel, so each record of the pending
 * map carries the channel generation and dies with it.
 */
final class AmqpSourceReader implements SourceReader<byte[], AmqpSplit>, AmqpConsumerSession.Listener {
    private static final Logger LOG = LoggerFactory.getLogger(AmqpSourceReader.class);
    private static final CompletableFuture<Void> AVAILABLE = CompletableFuture.completedFuture(null);
    private static final long OFFER_WAIT_MS = 100;
    /** Bundle mode: the most deliveries one poll takes, so a checkpoint barrier never waits long behind it. */
    private static final int MAX_DRAIN = 2000;

    private final AmqpConnectionConfig config;
    private final SourceReaderContext context;
    private final String clientName;
    /** Capacity = prefetch: the broker never has more than that in flight, so offers rarely wait. */
    private final ArrayBlockingQueue<AmqpDelivery> buffer;

    private final Object availabilityLock = new Object();
    /** Guarded by availabilityLock; completed by the dispatch thread when a delivery is buffered. */
    private CompletableFuture<Void> availability = new CompletableFuture<>();

    private final Counter reconnects;
    private final Counter ackFailures;
    private final Counter staleDropped;
    private final Counter bundles;
    private final Counter bundledMessages;

    private final AmqpConsumer.Factory consumers;
    private volatile AmqpConsumer session;
    private volatile Exception fatalError;
    private volatile boolean closed;
    private final long lingerNanos;
    /** Bundle mode's wake-ups when a linger ends; daemon, one per reader. */
    private final ScheduledExecutorService lingerTimer;
    /** Guarded by availabilityLock: the deadline of the pending wake-up, MIN_VALUE when none is pending. */
    private long wakeScheduledFor = Long.MIN_VALUE;

    // Task thread only.
    private final List<AmqpSplit> splits = new ArrayList<>();
    private final TreeMap<Long, PendingAck> pendingAcks = new TreeMap<>();
    private long lastEmittedGeneration;
    private long lastEmittedTag;
    private PendingAck lastAckRequested;

    AmqpSourceReader(AmqpConnectionConfig config, SourceReaderContext context) {
        this(config, context, AmqpConsumerSession::new);
    }

    AmqpSourceReader(AmqpConnectionConfig config, SourceReaderContext context, AmqpConsumer.Factory consumers) {
        this.config = config;
        this.consumers = consumers;
        this.context = context;
        this.clientName = config.connectionName() + "-" + context.getIndexOfSubtask();
        this.buffer = new ArrayBlockingQueue<>(config.prefetch());
        this.lingerNanos = config.bundleMessages() > 0 ? TimeUnit.MILLISECONDS.toNanos(config.bundleLingerMs()) : 0;
        this.lingerTimer = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, clientName + "-linger");
            thread.setDaemon(true);
            return thread;
        });
        this.reconnects = context.metricGroup().counter("amqpReconnects");
        this.ackFailures = context.metricGroup().counter("amqpAckFailures");
        this.staleDropped = context.metricGroup().counter("amqpStaleDeliveriesDropped");
        this.bundles = context.metricGroup().counter("amqpPolls");
        this.bundledMessages = context.metricGroup().counter("amqpPolledMessages");
        context.metricGroup().gauge("amqpBufferedDeliveries", buffer::size);
    }

    @Override
    public void start() {
        // The connection opens when the enumerator hands us a consumer slot (addSplits).
    }

    @Override
    public void addSplits(List<AmqpSplit> newSplits) {
        splits.addAll(newSplits);
        LOG.info("{}: got {} (now holding {})", clientName, newSplits, splits);
        if (session == null && !splits.isEmpty()) {
            // One consumer per reader, however many slots it holds after a scale-down: the slots
            // only say that someone consumes, the queue itself is shared.
            AmqpConsumer s = consumers.open(config, clientName, this, reconnects, ackFailures);
            session = s;
            s.start();
        }
    }

    @Override
    public InputStatus pollNext(ReaderOutput<byte[]> output) throws Exception {
        Exception fatal = fatalError;
        if (fatal != null) {
            throw new IOException("AMQP source " + clientName + " cannot consume from " + config
                    + ": " + AmqpConsumerSession.describe(fatal)
                    + " (check the credentials, the virtual host, the queue name and its permissions)", fatal);
        }
        if (config.bundleMessages() > 0) {
            return pollBundles(output);
        }
        AmqpDelivery delivery = buffer.poll();
        if (delivery == null) {
            return InputStatus.NOTHING_AVAILABLE;
        }
        AmqpConsumer s = session;
        if (s == null || delivery.generation != s.activeGeneration()) {
            // Its channel died: the tag cannot be acked any more and the broker redelivers the message.
            staleDropped.inc();
        } else {
            output.collect(AmqpEnvelope.encode(delivery.routingKey, delivery.body));
            lastEmittedGeneration = delivery.generation;
            lastEmittedTag = delivery.deliveryTag;
            if (config.ackMode() == AmqpAckMode.ON_EMIT) {
                ackOnEmit(s);
            }
        }
        return buffer.isEmpty() ? InputStatus.NOTHING_AVAILABLE : InputStatus.MORE_AVAILABLE;
    }

    /**
     * Bundle mode: everything buffered now (up to {@link #MAX_DRAIN}), grouped by shard, one record per
     * shard and at most bundleMessages per record. Never waits for more to arrive, so a quiet stream
     * keeps its latency and a busy one gets big bundles: the bundles grow exactly when the downstream
     * operator falls behind, which is when the per-record cost matters.
     */
    private InputStatus pollBundles(ReaderOutput<byte[]> output) {
        AmqpDelivery head = buffer.peek();
        if (head == null) {
            return InputStatus.NOTHING_AVAILABLE;
        }
        if (!readyToBundle()) {
            wakeAt(head.arrivedNanos + lingerNanos);
            return InputStatus.NOTHING_AVAILABLE;
        }
        List<AmqpDelivery> drained = new ArrayList<>();
        buffer.drainTo(drained, MAX_DRAIN);
        if (drained.isEmpty()) {
            return InputStatus.NOTHING_AVAILABLE;
        }
        AmqpConsumer s = session;
        Map<Integer, List<AmqpDelivery>> byShard = new LinkedHashMap<>();
        AmqpDelivery last = null;
        int emitted = 0;
        for (AmqpDelivery delivery : drained) {
            if (s == null || delivery.generation != s.activeGeneration()) {
                staleDropped.inc();  // its channel died: the broker redelivers it
                continue;
            }
            int shard = AmqpBundle.shardOf(delivery.routingKey, config.bundleShards());
            List<AmqpDelivery> group = byShard.computeIfAbsent(shard, k -> new ArrayList<>());
            group.add(delivery);
            if (group.size() == config.bundleMessages()) {
                output.collect(AmqpBundle.encode(shard, group));
                byShard.remove(shard);
            }
            last = delivery;
            emitted++;
        }
        for (Map.Entry<Integer, List<AmqpDelivery>> group : byShard.entrySet()) {
            output.collect(AmqpBundle.encode(group.getKey(), group.getValue()));
        }
        if (last != null) {
            // Deliveries leave the FIFO in tag order, so the last one emitted has the highest tag; no
            // checkpoint barrier can fall inside this call.
            lastEmittedGeneration = last.generation;
            lastEmittedTag = last.deliveryTag;
            bundles.inc();
            bundledMessages.inc(emitted);
            if (config.ackMode() == AmqpAckMode.ON_EMIT) {
                ackOnEmit(s);
            }
        }
        return buffer.isEmpty() ? InputStatus.NOTHING_AVAILABLE : InputStatus.MORE_AVAILABLE;
    }

    /**
     * Bundle mode: a poll goes ahead once a full bundle's worth is buffered or the oldest delivery has
     * lingered long enough. Without the linger a source that keeps up polls every delivery on its own, and
     * the bundles (split over the shards) hold one message each: the per-record cost is back.
     */
    private boolean readyToBundle() {
        AmqpDelivery head = buffer.peek();
        return head == null
                || lingerNanos == 0
                || buffer.size() >= config.bundleMessages()
                || System.nanoTime() - head.arrivedNanos >= lingerNanos;
    }

    /** Task thread: make sure isAvailable's future completes by {@code deadlineNanos}. */
    private void wakeAt(long deadlineNanos) {
        synchronized (availabilityLock) {
            if (wakeScheduledFor != Long.MIN_VALUE && wakeScheduledFor - deadlineNanos <= 0) {
                return;  // an earlier or equal wake-up is already on its way
            }
            wakeScheduledFor = deadlineNanos;
        }
        long delay = Math.max(0, deadlineNanos - System.nanoTime());
        lingerTimer.schedule(() -> {
            synchronized (availabilityLock) {
                wakeScheduledFor = Long.MIN_VALUE;
            }
            signalAvailable();
        }, delay, TimeUnit.NANOSECONDS);
    }

    /** Batches acks: when the buffer runs dry, or every half prefetch so the broker keeps sending. */
    private void ackOnEmit(AmqpConsumer s) {
        long acked = lastAckRequested != null && lastAckRequested.generation == lastEmittedGeneration
                ? lastAckRequested.deliveryTag : 0;
        if (buffer.isEmpty() || lastEmittedTag - acked >= Math.max(1, config.prefetch() / 2)) {
            requestAck(s, new PendingAck(lastEmittedGeneration, lastEmittedTag));
        }
    }

    @Override
    public CompletableFuture<Void> isAvailable() {
        synchronized (availabilityLock) {
            // Checked under the same lock the dispatch thread takes after buffering, so a delivery
            // that lands between pollNext's empty poll and this call is never missed.
            if ((!buffer.isEmpty() && readyToBundle()) || fatalError != null || closed) {
                return AVAILABLE;
            }
            if (availability.isDone()) {
                availability = new CompletableFuture<>();
            }
            return availability;
        }
    }

    private void signalAvailable() {
        synchronized (availabilityLock) {
            availability.complete(null);
        }
    }

    @Override
    public void onDelivery(AmqpDelivery delivery) throws InterruptedException {
        AmqpConsumer s = session;
        while (!closed && s != null && delivery.generation == s.activeGeneration()) {
            if (buffer.offer(delivery, OFFER_WAIT_MS, TimeUnit.MILLISECONDS)) {
                signalAvailable();
                return;
            }
        }
        // Closed, or the channel died while we waited: the broker redelivers it.
    }

    @Override
    public void onChannelLost(long generation) {
        int before = buffer.size();
        buffer.removeIf(d -> d.generation == generation);
        LOG.info("{}: dropped {} buffered deliveries of lost channel generation {}",
                clientName, before - buffer.size(), generation);
    }

    @Override
    public void onFatalError(Exception error) {
        fatalError = error;
        signalAvailable();
    }

    @Override
    public List<AmqpSplit> snapshotState(long checkpointId) {
        if (config.ackMode() == AmqpAckMode.AFTER_CHECKPOINT && session != null) {
            long active = session.activeGeneration();
            // Tags of a dead channel are invalid on any other: forget them.
            pendingAcks.values().removeIf(p -> p.generation != active);
            PendingAck newest = pendingAcks.isEmpty() ? lastAckRequested : pendingAcks.lastEntry().getValue();
            boolean emittedSince = newest == null
                    || newest.generation != lastEmittedGeneration
                    || newest.deliveryTag != lastEmittedTag;
            if (lastEmittedTag > 0 && lastEmittedGeneration == active && emittedSince) {
                pendingAcks.put(checkpointId, new PendingAck(lastEmittedGeneration, lastEmittedTag));
            }
        }
        return new ArrayList<>(splits);
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
        NavigableMap<Long, PendingAck> covered = pendingAcks.headMap(checkpointId, true);
        if (covered.isEmpty()) {
            return;
        }
        // Checkpoint ids only grow, so the last covered entry has the highest tag of its channel;
        // older entries (also from aborted checkpoints) are subsumed by it.
        Map.Entry<Long, PendingAck> highest = covered.lastEntry();
        covered.clear();
        AmqpConsumer s = session;
        if (s != null) {
            requestAck(s, highest.getValue());
        }
    }

    private void requestAck(AmqpConsumer s, PendingAck ack) {
        lastAckRequested = ack;
        s.ack(ack.generation, ack.deliveryTag);
    }

    @Override
    public void notifyNoMoreSplits() {
        // Never sent: the queue is unbounded.
    }

    @Override
    public void close() {
        closed = true;
        lingerTimer.shutdownNow();
        signalAvailable();
        AmqpConsumer s = session;
        if (s != null) {
            s.close();
        }
        // Whatever was delivered but not acked goes back to the queue when the connection closes.
        LOG.info("{}: closed ({} buffered deliveries, {} checkpoints awaiting ack are left to the broker)",
                clientName, buffer.size(), pendingAcks.size());
    }

    private static final class PendingAck {
        final long generation;
        final long deliveryTag;

        PendingAck(long generation, long deliveryTag) {
            this.generation = generation;
            this.deliveryTag = deliveryTag;
        }
    }
}
