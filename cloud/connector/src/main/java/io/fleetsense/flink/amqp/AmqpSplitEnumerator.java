package io.fleetsense.flink.amqp;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives every reader subtask one consumer slot when it registers. Nothing is ever "finished": the
 * queue is unbounded, so the enumerator never signals no-more-splits.
 *
 * <p>All methods run in the coordinator thread, so the fields need no locking.
 */
final class AmqpSplitEnumerator implements SplitEnumerator<AmqpSplit, AmqpEnumeratorState> {
    private static final Logger LOG = LoggerFactory.getLogger(AmqpSplitEnumerator.class);

    private final SplitEnumeratorContext<AmqpSplit> context;
    private final Set<Integer> createdSlots;
    private final Map<Integer, Set<Integer>> returnedSlots;

    AmqpSplitEnumerator(SplitEnumeratorContext<AmqpSplit> context, AmqpEnumeratorState state) {
        this.context = context;
        this.createdSlots = new TreeSet<>(state.createdSlots());
        this.returnedSlots = new TreeMap<>();
        state.returnedSlots().forEach((subtask, slots) -> returnedSlots.put(subtask, new TreeSet<>(slots)));
    }

    @Override
    public void start() {}

    @Override
    public void addReader(int subtaskId) {
        Set<Integer> returned = returnedSlots.remove(subtaskId);
        if (returned != null && !returned.isEmpty()) {
            for (int slot : returned) {
                assign(new AmqpSplit(slot), subtaskId, "reassigning returned");
            }
            return;
        }
        // A slot that already exists lives in some reader's restored state; creating it again would
        // make two readers think they own it.
        if (createdSlots.add(subtaskId)) {
            assign(new AmqpSplit(subtaskId), subtaskId, "assigning new");
        } else {
            LOG.debug("AMQP reader {} registered; its slot already exists (restored from state)", subtaskId);
        }
    }

    private void assign(AmqpSplit split, int subtaskId, String what) {
        LOG.info("{} {} to reader {}", what, split, subtaskId);
        context.assignSplit(split, subtaskId);
    }

    @Override
    public void addSplitsBack(List<AmqpSplit> splits, int subtaskId) {
        // Flink hands back splits assigned after the last completed checkpoint when a reader fails;
        // the restarted reader registers again and gets them back in addReader.
        if (splits.isEmpty()) {
            return;
        }
        Set<Integer> slots = returnedSlots.computeIfAbsent(subtaskId, k -> new TreeSet<>());
        for (AmqpSplit split : splits) {
            slots.add(split.slot());
            createdSlots.add(split.slot());
        }
        LOG.info("AMQP splits {} returned by reader {}; they go back to it when it registers again", splits, subtaskId);
        if (context.registeredReaders().containsKey(subtaskId)) {
            // The reader is already back (registration can race with the hand-back).
            addReader(subtaskId);
        }
    }

    @Override
    public void handleSplitRequest(int subtaskId, String requesterHostname) {
        // Readers never request splits: assignment is push-only on registration.
    }

    @Override
    public AmqpEnumeratorState snapshotState(long checkpointId) {
        return new AmqpEnumeratorState(createdSlots, returnedSlots);
    }

    @Override
    public void close() {}
}
