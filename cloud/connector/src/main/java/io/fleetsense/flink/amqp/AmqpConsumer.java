package io.fleetsense.flink.amqp;

import org.apache.flink.metrics.Counter;

/**
 * What the reader needs of its consumer: {@link AmqpConsumerSession} against a broker, a scripted one in the
 * reader's unit tests (which drive deliveries, channel generations and acks without a broker).
 */
interface AmqpConsumer extends AutoCloseable {
    /** Connects in the background; deliveries reach the listener given to the {@link Factory}. */
    void start();

    /** Generation of the channel that may be consumed from and acked on; 0 while there is none. */
    long activeGeneration();

    /** Acks every delivery up to {@code deliveryTag} (multiple=true) if its channel is still alive. */
    void ack(long generation, long deliveryTag);

    @Override
    void close();

    /** How a reader opens its consumer; the production one is {@code AmqpConsumerSession::new}. */
    @FunctionalInterface
    interface Factory {
        AmqpConsumer open(
                AmqpConnectionConfig config,
                String clientName,
                AmqpConsumerSession.Listener listener,
                Counter reconnects,
                Counter ackFailures);
    }
}
