package io.fleetsense.flink.amqp;

import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * What the enumerator must remember across a restore: which slots already exist (so a reader that
 * restores its split from state is not given a second one) and which splits came back from a failed
 * reader and wait for it to register again.
 */
public final class AmqpEnumeratorState {
    private final Set<Integer> createdSlots;
    /** Subtask index to the slots handed back from it. */
    private final Map<Integer, Set<Integer>> returnedSlots;

    public AmqpEnumeratorState(Set<Integer> createdSlots, Map<Integer, Set<Integer>> returnedSlots) {
        this.createdSlots = Collections.unmodifiableSet(new TreeSet<>(createdSlots));
        Map<Integer, Set<Integer>> copy = new TreeMap<>();
        returnedSlots.forEach((subtask, slots) -> copy.put(subtask, Collections.unmodifiableSet(new TreeSet<>(slots))));
        this.returnedSlots = Collections.unmodifiableMap(copy);
    }

    public static AmqpEnumeratorState empty() {
        return new AmqpEnumeratorState(Collections.emptySet(), Collections.emptyMap());
    }

    public Set<Integer> createdSlots() {
        return createdSlots;
    }

    public Map<Integer, Set<Integer>> returnedSlots() {
        return returnedSlots;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof AmqpEnumeratorState)) {
            return false;
        }
        AmqpEnumeratorState other = (AmqpEnumeratorState) o;
        return createdSlots.equals(other.createdSlots) && returnedSlots.equals(other.returnedSlots);
    }

    @Override
    public int hashCode() {
        return 31 * createdSlots.hashCode() + returnedSlots.hashCode();
    }

    @Override
    public String toString() {
        return "AmqpEnumeratorState{created=" + createdSlots + ", returned=" + returnedSlots + "}";
    }
}
