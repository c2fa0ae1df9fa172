package io.fleetsense.flink.cassandra;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The records Python writes (fleetsense.cloud.sink_records.encode). The hex below is pinned byte for byte by
 * tests/unit/test_sink_records.py too: change the layout on one side and both suites fail.
 */
class SinkRecordTest {
    /** "hour" with 00 01 and a null; "vehicle" with "ab" and an unset marker. */
    static final String RECORD_HEX = "01" + "00000002"
            + "04" + "686f7572" + "0002" + "00000002" + "0001" + "ffffffff"
            + "07" + "76656869636c65" + "0002" + "00000002" + "6162" + "fffffffe";

    private static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex);
    }

    private static byte[] bytes(ByteBuffer value) {
        byte[] out = new byte[value.remaining()];
        value.duplicate().get(out);
        return out;
    }

    @Test
    void aRecordDecodesToItsWritesInOrder() throws IOException {
        List<SinkRecord.Write> writes = SinkRecord.decode(hex(RECORD_HEX));
        assertEquals(2, writes.size());
        assertEquals("hour", writes.get(0).statement);
        assertArrayEquals(hex("0001"), bytes(writes.get(0).values[0]));
        assertNull(writes.get(0).values[1]);
        assertEquals("vehicle", writes.get(1).statement);
        assertArrayEquals("ab".getBytes(java.nio.charset.StandardCharsets.US_ASCII), bytes(writes.get(1).values[0]));
        assertSame(SinkRecord.UNSET, writes.get(1).values[1]);
    }

    @Test
    void anEmptyValueIsNotANull() throws IOException {
        SinkRecord.Write write = SinkRecord.decode(hex("01" + "00000001" + "0161" + "0001" + "00000000")).get(0);
        assertEquals(0, write.values[0].remaining());
    }

    @Test
    void aMalformedRecordSaysWhatIsWrong() {
        assertTrue(message("02" + "00000000").contains("format 2, expected 1"));
        assertTrue(message("01" + "00000001" + "04" + "686f").contains("truncated"));
        assertTrue(message("01" + "00000001" + "0161" + "0001" + "00000005" + "6162").contains("out of the record"));
        assertTrue(message("01" + "00000000" + "ff").contains("1 bytes after the last write"));
    }

    private static String message(String recordHex) {
        return assertThrows(IOException.class, () -> SinkRecord.decode(hex(recordHex))).getMessage();
    }
}
