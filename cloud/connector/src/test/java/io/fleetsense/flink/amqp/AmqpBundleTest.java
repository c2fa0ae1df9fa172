package io.fleetsense.flink.amqp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The records Python decodes (fleetsense.cloud.amqp_source.split_envelope / split_bundle / shard_of). The hex
 * below is pinned byte for byte by tests/unit/test_shard_stream.py and tests/unit/test_amqp_envelope.py too:
 * change the layout on one side and both suites fail.
 */
class AmqpBundleTest {
    /** Shard 7; fleet.a.telemetry "one", fleet.b.telemetry "", fleet.ä.telemetry 00 00 00. */
    static final String BUNDLE_HEX = "00070003"
            + "0011" + "666c6565742e612e74656c656d65747279" + "00000003" + "6f6e65"
            + "0011" + "666c6565742e622e74656c656d65747279" + "00000000"
            + "0012" + "666c6565742ec3a42e74656c656d65747279" + "00000003" + "000000";

    private static AmqpDelivery delivery(String routingKey, byte[] body) {
        return new AmqpDelivery(1, 1, routingKey, body);
    }

    private static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex);
    }

    @Test
    void bundleBytesAreTheLayoutPythonDecodes() {
        List<AmqpDelivery> messages = List.of(
                delivery("fleet.a.telemetry", "one".getBytes(StandardCharsets.UTF_8)),
                delivery("fleet.b.telemetry", new byte[0]),
                delivery("fleet.ä.telemetry", new byte[3]));
        assertArrayEquals(hex(BUNDLE_HEX), AmqpBundle.encode(7, messages));
    }

    @Test
    void bodyLengthIsAFullU32AndKeyLengthCountsUtf8Bytes() {
        byte[] record = AmqpBundle.encode(65535, List.of(delivery("ä", new byte[70_000])));
        // shard ffff, count 1, key length 2 (UTF-8 of ä is c3 a4), body length 0x00011170 = 70,000.
        assertArrayEquals(hex("ffff0001" + "0002c3a4" + "00011170"), Arrays.copyOf(record, 12));
        assertEquals(12 + 70_000, record.length);
    }

    @Test
    void anEmptyBundleIsJustItsHeader() {
        assertArrayEquals(hex("00020000"), AmqpBundle.encode(2, Collections.emptyList()));
    }

    @Test
    void shardsOutsideU16AreRefused() {
        assertThrows(IllegalArgumentException.class, () -> AmqpBundle.encode(65536, Collections.emptyList()));
        assertThrows(IllegalArgumentException.class, () -> AmqpBundle.encode(-1, Collections.emptyList()));
    }

    @Test
    void theShardIsCrc32OfTheVehicleIdModuloShards() {
        // zlib.crc32(b"van-7") % 16 == 14, zlib.crc32(b"odd-key") % 5 == 2 (the values Python's shard_of gives).
        assertEquals(14, AmqpBundle.shardOf("fleet.van-7.telemetry", 16));
        assertEquals(14, AmqpBundle.shardOf("fleet.van-7.status", 16));
        assertEquals(2, AmqpBundle.shardOf("odd-key", 5));
        assertEquals(3, AmqpBundle.shardOf("fleet.ä.telemetry", 16));
        // Not three parts: the whole key is hashed (crc32(b"a.b.c.d") % 5 == 0).
        assertEquals(0, AmqpBundle.shardOf("a.b.c.d", 5));
    }

    @Test
    void envelopeBytesAreTheLayoutPythonDecodes() {
        // tests/unit/test_amqp_envelope.py: split_envelope(b"\x00\x03a.b\xff") == ("a.b", b"\xff").
        assertArrayEquals(hex("0003612e62ff"), AmqpEnvelope.encode("a.b", new byte[] {(byte) 0xff}));
        assertArrayEquals(hex("0000"), AmqpEnvelope.encode("", new byte[0]));
    }
}
