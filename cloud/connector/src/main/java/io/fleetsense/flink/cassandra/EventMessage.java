package io.fleetsense.flink.cassandra;

import java.nio.charset.StandardCharsets;

/**
 * A stored event as the live feed carries it: the JSON of fleetsense.service.live_event's {@code LiveEvent.to_json}
 * (the same fields in the same order, no spaces, non-ASCII escaped as Python's json.dumps does), and the routing key
 * {@code <kind>.<vehicle_id>} it is published under. The key field is the event's deterministic key
 * {@code <vehicle_id>/<start ms>/<kind>} (service/event_key.py), so a replay after a job restore publishes the same
 * key again and the API drops the repeat. EventMessageTest and tests/unit/test_live_message.py pin the same bytes.
 */
final class EventMessage {
    final String routingKey;
    final byte[] body;

    private EventMessage(String routingKey, byte[] body) {
        this.routingKey = routingKey;
        this.body = body;
    }

    static String key(String vehicleId, long startMs, String kind) {
        return vehicleId + "/" + startMs + "/" + kind;
    }

    static EventMessage of(String vehicleId, String kind, long startMs, long endMs, int durationMs, float peak,
            String peakUnit, long detectedMs) {
        StringBuilder json = new StringBuilder(256).append('{');
        field(json, "key").append(quoted(key(vehicleId, startMs, kind))).append(',');
        field(json, "vehicle_id").append(quoted(vehicleId)).append(',');
        field(json, "kind").append(quoted(kind)).append(',');
        field(json, "start_ms").append(startMs).append(',');
        field(json, "end_ms").append(endMs).append(',');
        field(json, "duration_ms").append(durationMs).append(',');
        // The column is a float: its shortest decimal that reads back as the same float ("0.45", not
        // 0.44999998807907104). JSON has no NaN or Infinity: null.
        field(json, "peak").append(Float.isFinite(peak) ? Float.toString(peak) : "null").append(',');
        field(json, "peak_unit").append(quoted(peakUnit)).append(',');
        field(json, "detected_ms").append(detectedMs).append('}');
        return new EventMessage(kind + "." + vehicleId, json.toString().getBytes(StandardCharsets.US_ASCII));
    }

    private static StringBuilder field(StringBuilder json, String name) {
        return json.append('"').append(name).append("\":");
    }

    /** A JSON string as Python's json.dumps writes it (ensure_ascii): every non-ASCII char as a \\u escape. */
    static String quoted(String text) {
        StringBuilder out = new StringBuilder(text.length() + 2).append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
