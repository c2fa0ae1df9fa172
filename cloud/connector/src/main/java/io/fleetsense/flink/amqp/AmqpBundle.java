package io.fleetsense.flink.amqp;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.zip.CRC32;

/**
 * The record the source emits in bundle mode: many messages of one shard in one Flink record, so the
 * per-record cost of Flink and of its Python bridge is paid once per bundle instead of once per message.
 *
 * <pre>
 * [u16 BE shard][u16 BE message count]
 * then per message: [u16 BE routing key length][routing key UTF-8][u32 BE body length][body]
 * </pre>
 *
 * <p>A message's shard is {@code CRC-32(vehicle id UTF-8) mod shards}, the vehicle id being the middle part
 * of a three-part routing key ({@code fleet.<vehicle>.telemetry}) and the whole key otherwise. Keying the
 * stream by shard keeps every vehicle on one analysis subtask however the bundles are cut. Python's
 * {@code fleetsense.cloud.amqp_source.split_bundle} and {@code shard_of} read and reproduce this layout.
 */
public final class AmqpBundle {

    /** Messages per bundle fit the u16 count; the shard count too. */
    static final int MAX_COUNT = 0xFFFF;

    private AmqpBundle() {}

    public static int shardOf(String routingKey, int shards) {
        int first = routingKey.indexOf('.');
        int last = routingKey.lastIndexOf('.');
        boolean threeParts = first >= 0 && last > first && routingKey.indexOf('.', first + 1) == last;
        String vehicle = threeParts ? routingKey.substring(first + 1, last) : routingKey;
        CRC32 crc = new CRC32();
        crc.update(vehicle.getBytes(StandardCharsets.UTF_8));
        return (int) (crc.getValue() % shards);
    }

    static byte[] encode(int shard, List<AmqpDelivery> deliveries) {
        if (deliveries.size() > MAX_COUNT || shard < 0 || shard > MAX_COUNT) {
            throw new IllegalArgumentException("bundle of " + deliveries.size() + " messages for shard " + shard);
        }
        int size = 4;
        byte[][] keys = new byte[deliveries.size()][];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = deliveries.get(i).routingKey.getBytes(StandardCharsets.UTF_8);
            if (keys[i].length > AmqpEnvelope.MAX_ROUTING_KEY_BYTES) {
                throw new IllegalArgumentException("routing key longer than " + AmqpEnvelope.MAX_ROUTING_KEY_BYTES);
            }
            size += 2 + keys[i].length + 4 + deliveries.get(i).body.length;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(size);
        writeU16(out, shard);
        writeU16(out, deliveries.size());
        for (int i = 0; i < keys.length; i++) {
            byte[] body = deliveries.get(i).body;
            writeU16(out, keys[i].length);
            out.write(keys[i], 0, keys[i].length);
            out.write(body.length >>> 24);
            out.write(body.length >>> 16);
            out.write(body.length >>> 8);
            out.write(body.length);
            out.write(body, 0, body.length);
        }
        return out.toByteArray();
    }

    private static void writeU16(ByteArrayOutputStream out, int value) {
        out.write(value >>> 8);
        out.write(value);
    }
}
