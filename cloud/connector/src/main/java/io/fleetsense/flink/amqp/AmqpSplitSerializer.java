package io.fleetsense.flink.amqp;

import java.io.IOException;
import java.nio.ByteBuffer;
import org.apache.flink.core.io.SimpleVersionedSerializer;

/** Checkpoint format of {@link AmqpSplit}, version 1: the slot as a 4-byte big-endian int. */
public final class AmqpSplitSerializer implements SimpleVersionedSerializer<AmqpSplit> {
    static final int VERSION = 1;

    @Override
    public int getVersion() {
        return VERSION;
    }

    @Override
    public byte[] serialize(AmqpSplit split) {
        return ByteBuffer.allocate(4).putInt(split.slot()).array();
    }

    @Override
    public AmqpSplit deserialize(int version, byte[] serialized) throws IOException {
        if (version != VERSION) {
            throw new IOException("unknown AmqpSplit serializer version " + version + " (this build knows " + VERSION + ")");
        }
        if (serialized.length != 4) {
            throw new IOException("AmqpSplit state must be 4 bytes, got " + serialized.length);
        }
        return new AmqpSplit(ByteBuffer.wrap(serialized).getInt());
    }
}
