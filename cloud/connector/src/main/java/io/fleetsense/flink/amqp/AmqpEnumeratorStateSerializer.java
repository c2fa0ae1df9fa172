package io.fleetsense.flink.amqp;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.flink.core.io.SimpleVersionedSerializer;

/**
 * Checkpoint format of {@link AmqpEnumeratorState}, version 1 (all ints big-endian):
 * {@code [n][slot]*n [m]([subtask][k][slot]*k)*m}.
 */
public final class AmqpEnumeratorStateSerializer implements SimpleVersionedSerializer<AmqpEnumeratorState> {
    static final int VERSION = 1;

    @Override
    public int getVersion() {
        return VERSION;
    }

    @Override
    public byte[] serialize(AmqpEnumeratorState state) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            writeInts(out, state.createdSlots());
            out.writeInt(state.returnedSlots().size());
            for (Map.Entry<Integer, Set<Integer>> e : state.returnedSlots().entrySet()) {
                out.writeInt(e.getKey());
                writeInts(out, e.getValue());
            }
        }
        return bytes.toByteArray();
    }

    @Override
    public AmqpEnumeratorState deserialize(int version, byte[] serialized) throws IOException {
        if (version != VERSION) {
            throw new IOException(
                    "unknown AmqpEnumeratorState serializer version " + version + " (this build knows " + VERSION + ")");
        }
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
            Set<Integer> created = readInts(in);
            int subtasks = in.readInt();
            checkCount(subtasks);
            Map<Integer, Set<Integer>> returned = new TreeMap<>();
            for (int i = 0; i < subtasks; i++) {
                returned.put(in.readInt(), readInts(in));
            }
            if (in.available() != 0) {
                throw new IOException("trailing bytes in AmqpEnumeratorState");
            }
            return new AmqpEnumeratorState(created, returned);
        }
    }

    private static void writeInts(DataOutputStream out, Set<Integer> values) throws IOException {
        out.writeInt(values.size());
        for (int v : values) {
            out.writeInt(v);
        }
    }

    private static Set<Integer> readInts(DataInputStream in) throws IOException {
        int n = in.readInt();
        checkCount(n);
        Set<Integer> values = new TreeSet<>();
        for (int i = 0; i < n; i++) {
            values.add(in.readInt());
        }
        return values;
    }

    private static void checkCount(int n) throws IOException {
        // A corrupt length must fail with a message, not allocate gigabytes.
        if (n < 0 || n > 1_000_000) {
            throw new IOException("corrupt AmqpEnumeratorState: count " + n);
        }
    }
}
