package io.fleetsense.flink.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The live feed's message: the bytes tests/unit/test_live_message.py pins for Python's LiveEvent.to_json. */
class EventMessageTest {

    @Test
    void aHarshBrakeIsTheJsonOfLiveEventToJson() {
        EventMessage message = EventMessage.of("van-01", "harsh_brake", 1765000000123L, 1765000000923L, 800, 0.5f,
                "g", 1765000002000L);
        assertEquals("{\"key\":\"van-01/1765000000123/harsh_brake\",\"vehicle_id\":\"van-01\","
                + "\"kind\":\"harsh_brake\",\"start_ms\":1765000000123,\"end_ms\":1765000000923,"
                + "\"duration_ms\":800,\"peak\":0.5,\"peak_unit\":\"g\",\"detected_ms\":1765000002000}",
                new String(message.body, StandardCharsets.US_ASCII));
        assertEquals("harsh_brake.van-01", message.routingKey);
    }

    @Test
    void aFloatPeakIsWrittenAsItsShortestDecimal() {
        String json = new String(EventMessage.of("v", "bump", 0, 1, 1, 0.45f, "g", 2).body, StandardCharsets.US_ASCII);
        assertTrue(json.contains("\"peak\":0.45,"), json);
    }

    @Test
    void aPeakThatIsNoNumberIsNull() {
        String json = new String(EventMessage.of("v", "bump", 0, 1, 1, Float.NaN, "g", 2).body,
                StandardCharsets.US_ASCII);
        assertTrue(json.contains("\"peak\":null,"), json);
    }

    @Test
    void stringsAreEscapedAsPythonsJsonDumpsDoes() {
        // Python: json.dumps('a"\\\n\x01\x7f\u00e9\U0001F600') == r'"a\"\\\n\u0001\u007f\u00e9\ud83d\ude00"'
        assertEquals("\"a\\\"\\\\\\n\\u0001\\u007f\\u00e9\\ud83d\\ude00\"",
                EventMessage.quoted("a\"\\\n\u0001\u007f\u00e9\uD83D\uDE00"));
    }
}
