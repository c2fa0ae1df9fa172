package io.fleetsense.flink.amqp;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.function.BiConsumer;
import org.apache.flink.api.connector.source.ReaderInfo;
import org.apache.flink.api.connector.source.SourceEvent;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.connector.source.SplitsAssignment;
import org.apache.flink.metrics.groups.SplitEnumeratorMetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.junit.jupiter.api.Test;

/** One slot per reader, never two for the same slot across a restore, hand-backs returned to their reader. */
class AmqpSplitEnumeratorTest {
    private final RecordingContext context = new RecordingContext();

    @Test
    void eachNewReaderGetsTheSlotOfItsSubtask() {
        AmqpSplitEnumerator enumerator = new AmqpSplitEnumerator(context, AmqpEnumeratorState.empty());
        enumerator.addReader(0);
        enumerator.addReader(1);
        assertEquals(List.of("0->consumer-0", "1->consumer-1"), context.assigned);
        assertEquals(new AmqpEnumeratorState(Set.of(0, 1), Map.of()), enumerator.snapshotState(1));
    }

    @Test
    void aRestoredSlotIsNotCreatedTwice() {
        AmqpSplitEnumerator enumerator = new AmqpSplitEnumerator(context, new AmqpEnumeratorState(Set.of(0), Map.of()));
        enumerator.addReader(0);  // its split comes back from the reader's own state
        enumerator.addReader(1);
        assertEquals(List.of("1->consumer-1"), context.assigned);
    }

    @Test
    void splitsHandedBackGoToTheirReaderWhenItRegistersAgain() {
        AmqpSplitEnumerator enumerator = new AmqpSplitEnumerator(context, AmqpEnumeratorState.empty());
        enumerator.addReader(0);
        enumerator.addSplitsBack(List.of(new AmqpSplit(0)), 0);
        assertEquals(new AmqpEnumeratorState(Set.of(0), Map.of(0, Set.of(0))), enumerator.snapshotState(2));
        enumerator.addReader(0);
        assertEquals(List.of("0->consumer-0", "0->consumer-0"), context.assigned);
        assertEquals(new AmqpEnumeratorState(Set.of(0), Map.of()), enumerator.snapshotState(3));
    }

    @Test
    void aHandBackAfterTheReaderIsAlreadyBackIsAssignedAtOnce() {
        AmqpSplitEnumerator enumerator = new AmqpSplitEnumerator(context, new AmqpEnumeratorState(Set.of(1), Map.of()));
        context.readers.put(1, new ReaderInfo(1, "localhost"));
        enumerator.addSplitsBack(List.of(new AmqpSplit(1)), 1);
        assertEquals(List.of("1->consumer-1"), context.assigned);
    }

    /** Records assignments; only what the enumerator calls is implemented. */
    private static final class RecordingContext implements SplitEnumeratorContext<AmqpSplit> {
        final List<String> assigned = new ArrayList<>();
        final Map<Integer, ReaderInfo> readers = new HashMap<>();

        @Override
        public SplitEnumeratorMetricGroup metricGroup() {
            return UnregisteredMetricsGroup.createSplitEnumeratorMetricGroup();
        }

        @Override
        public void sendEventToSourceReader(int subtaskId, SourceEvent event) {}

        @Override
        public int currentParallelism() {
            return 2;
        }

        @Override
        public Map<Integer, ReaderInfo> registeredReaders() {
            return readers;
        }

        @Override
        public void assignSplits(SplitsAssignment<AmqpSplit> assignment) {
            assignment.assignment().forEach((subtask, splits) ->
                    splits.forEach(split -> assigned.add(subtask + "->" + split.splitId())));
        }

        @Override
        public void signalNoMoreSplits(int subtask) {
            throw new AssertionError("the queue is unbounded: no-more-splits is never signalled");
        }

        @Override
        public <T> void callAsync(Callable<T> callable, BiConsumer<T, Throwable> handler) {}

        @Override
        public <T> void callAsync(Callable<T> callable, BiConsumer<T, Throwable> handler, long delay, long period) {}

        @Override
        public void runInCoordinatorThread(Runnable runnable) {
            runnable.run();
        }
    }
}
