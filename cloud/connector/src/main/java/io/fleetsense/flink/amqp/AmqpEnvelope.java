package io.fleetsense.flink.amqp;

import java.nio.charset.StandardCharsets;

/**
 * The record the source emits: {@code [u16 big-endian length of routing key][routing key UTF-8][body]}.
 *
 * <p>The routing key travels outside the payload because it is the one thing the broker authenticates
 * (topic permissions pin each device to its own routing keys); the payload is whatever the device sent.
 */
public final class AmqpEnvelope {

    /** AMQP routing keys are short strings (at most 255 bytes), so a u16 prefix is always enough. */
    static final int MAX_ROUTING_KEY_BYTES = 0xFFFF;

    private AmqpEnvelope() {}

    public static byte[] encode(String routingKey, byte[] body) {
        byte[] key = routingKey.getBytes(StandardCharsets.UTF_8);
        if (key.length > MAX_ROUTING_KEY_BYTES) {
            throw new IllegalArgumentException("routing key longer than " + MAX_ROUTING_KEY_BYTES + " bytes");
        }
        byte[] out = new byte[2 + key.length + body.length];
        out[0] = (byte) (key.length >>> 8);
        out[1] = (byte) key.length;
        System.arraycopy(key, 0, out, 2, key.length);
        System.arraycopy(body, 0, out, 2 + key.length, body.length);
        return out;
    }
}
