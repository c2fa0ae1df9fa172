package io.fleetsense.flink.amqp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.HexFormat;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The checkpoint formats: a savepoint written by one build must restore in the next, so the bytes are pinned. */
class AmqpSerializersTest {
    private final AmqpSplitSerializer splits = new AmqpSplitSerializer();
    private final AmqpEnumeratorStateSerializer states = new AmqpEnumeratorStateSerializer();

    private static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex);
    }

    @Test
    void splitIsItsSlotAsFourBigEndianBytes() throws IOException {
        assertEquals(1, splits.getVersion());
        assertArrayEquals(hex("00000102"), splits.serialize(new AmqpSplit(258)));
        assertEquals(new AmqpSplit(258), splits.deserialize(1, hex("00000102")));
        assertEquals("consumer-258", splits.deserialize(1, hex("00000102")).splitId());
    }

    @Test
    void splitStateOfAnotherVersionOrLengthIsRefusedWithAReason() {
        IOException version = assertThrows(IOException.class, () -> splits.deserialize(2, hex("00000001")));
        assertTrue(version.getMessage().contains("unknown AmqpSplit serializer version 2"), version.getMessage());
        IOException length = assertThrows(IOException.class, () -> splits.deserialize(1, hex("000001")));
        assertTrue(length.getMessage().contains("must be 4 bytes, got 3"), length.getMessage());
        // A negative slot is corrupt state, not a split.
        assertThrows(IllegalArgumentException.class, () -> splits.deserialize(1, hex("ffffffff")));
    }

    @Test
    void enumeratorStateBytesArePinned() throws IOException {
        AmqpEnumeratorState state = new AmqpEnumeratorState(Set.of(2, 0, 1), Map.of(3, Set.of(1), 0, Set.of()));
        // [n=3][0][1][2] [m=2] ([0][k=0]) ([3][k=1][1]): sorted, big-endian ints.
        String expected = "00000003" + "00000000" + "00000001" + "00000002"
                + "00000002" + "00000000" + "00000000" + "00000003" + "00000001" + "00000001";
        assertEquals(1, states.getVersion());
        assertArrayEquals(hex(expected), states.serialize(state));
        assertEquals(state, states.deserialize(1, hex(expected)));
    }

    @Test
    void emptyEnumeratorStateRoundTrips() throws IOException {
        byte[] bytes = states.serialize(AmqpEnumeratorState.empty());
        assertArrayEquals(hex("0000000000000000"), bytes);
        assertEquals(AmqpEnumeratorState.empty(), states.deserialize(1, bytes));
    }

    @Test
    void corruptEnumeratorStateIsRefusedWithAReason() {
        IOException version = assertThrows(IOException.class, () -> states.deserialize(9, hex("0000000000000000")));
        assertTrue(version.getMessage().contains("version 9"), version.getMessage());
        IOException count = assertThrows(IOException.class, () -> states.deserialize(1, hex("7fffffff")));
        assertTrue(count.getMessage().contains("corrupt AmqpEnumeratorState: count 2147483647"), count.getMessage());
        IOException trailing = assertThrows(IOException.class, () -> states.deserialize(1, hex("000000000000000000")));
        assertTrue(trailing.getMessage().contains("trailing bytes"), trailing.getMessage());
        // Truncated: fewer slots than announced.
        assertThrows(IOException.class, () -> states.deserialize(1, hex("0000000200000001")));
    }
}
