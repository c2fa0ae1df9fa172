package io.fleetsense.flink.amqp;

import java.util.Objects;
import org.apache.flink.api.connector.source.SourceSplit;

/**
 * A consumer slot on the queue. All readers compete on the same queue, so a split carries no offset:
 * it only gives a reader the right to hold one consumer. Its identity is the subtask index it was
 * created for, which keeps assignments stable across restarts.
 */
public final class AmqpSplit implements SourceSplit {
    private final int slot;

    public AmqpSplit(int slot) {
        if (slot < 0) {
            throw new IllegalArgumentException("slot must be >= 0, got " + slot);
        }
        this.slot = slot;
    }

    public int slot() {
        return slot;
    }

    @Override
    public String splitId() {
        return "consumer-" + slot;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AmqpSplit && ((AmqpSplit) o).slot == slot;
    }

    @Override
    public int hashCode() {
        return Objects.hash(slot);
    }

    @Override
    public String toString() {
        return "AmqpSplit{" + splitId() + "}";
    }
}
