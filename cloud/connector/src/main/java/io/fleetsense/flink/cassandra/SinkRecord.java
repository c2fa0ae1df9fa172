package io.fleetsense.flink.cassandra;

import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The record the Python analysis operator sends to the sink: a bundle's writes, each value already serialised
 * by the Python driver for its column (fleetsense.cloud.sink_records writes this layout; docs/cloud-etl.md
 * describes it). The sink passes the value bytes through unchanged, so it knows no CQL type.
 *
 * <pre>
 * [u8 format = 1][u32 write count]
 * per write: [u8 statement name length][statement name, ASCII][u16 value count]
 * per value: [i32 length][length bytes]     length -1: null, -2: unset
 * </pre>
 */
public final class SinkRecord {

    static final int FORMAT = 1;
    static final int NULL_LENGTH = -1;
    static final int UNSET_LENGTH = -2;
    /** The value of an unset marker (compared by identity): the column keeps what it had. */
    static final ByteBuffer UNSET = ByteBuffer.allocate(0).asReadOnlyBuffer();

    /** One row's write: the statement's name and its values in marker order (null: a null value). */
    static final class Write {
        final String statement;
        final ByteBuffer[] values;

        Write(String statement, ByteBuffer[] values) {
            this.statement = statement;
            this.values = values;
        }
    }

    private SinkRecord() {}

    static List<Write> decode(byte[] record) throws IOException {
        ByteBuffer in = ByteBuffer.wrap(record);
        try {
            int format = Byte.toUnsignedInt(in.get());
            if (format != FORMAT) {
                throw new IOException("sink record format " + format + ", expected " + FORMAT
                        + ": the job's Python code and the connector jar are from different versions");
            }
            long count = Integer.toUnsignedLong(in.getInt());
            List<Write> writes = new ArrayList<>((int) Math.min(count, 4096));
            for (long i = 0; i < count; i++) {
                byte[] name = new byte[Byte.toUnsignedInt(in.get())];
                in.get(name);
                ByteBuffer[] values = new ByteBuffer[Short.toUnsignedInt(in.getShort())];
                for (int v = 0; v < values.length; v++) {
                    int length = in.getInt();
                    if (length == NULL_LENGTH) {
                        values[v] = null;
                    } else if (length == UNSET_LENGTH) {
                        values[v] = UNSET;
                    } else if (length < 0 || length > in.remaining()) {
                        throw new IOException("value length " + length + " at byte " + (in.position() - 4)
                                + " is out of the record");
                    } else {
                        values[v] = in.slice().limit(length);
                        in.position(in.position() + length);
                    }
                }
                writes.add(new Write(new String(name, StandardCharsets.US_ASCII), values));
            }
            if (in.hasRemaining()) {
                throw new IOException(in.remaining() + " bytes after the last write of a sink record");
            }
            return writes;
        } catch (BufferUnderflowException e) {
            throw new IOException("truncated sink record (" + record.length + " bytes)", e);
        }
    }
}
