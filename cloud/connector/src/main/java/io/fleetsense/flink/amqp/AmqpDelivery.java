package io.fleetsense.flink.amqp;

/**
 * One message taken off the wire, tagged with the channel generation it arrived on: a delivery tag is
 * only meaningful on the channel that produced it, so acks and stale-buffer checks compare generations.
 */
final class AmqpDelivery {
    final long generation;
    final long deliveryTag;
    final String routingKey;
    final byte[] body;
    /** System.nanoTime() when it arrived: bundle mode lingers from the oldest buffered delivery. */
    final long arrivedNanos = System.nanoTime();

    AmqpDelivery(long generation, long deliveryTag, String routingKey, byte[] body) {
        this.generation = generation;
        this.deliveryTag = deliveryTag;
        this.routingKey = routingKey;
        this.body = body;
    }
}
