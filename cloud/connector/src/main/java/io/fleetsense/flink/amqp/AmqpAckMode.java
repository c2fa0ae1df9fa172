package io.fleetsense.flink.amqp;

/** When the source acknowledges a delivery to the broker. */
public enum AmqpAckMode {
    /**
     * Ack only after the checkpoint that covers the delivery has completed: at-least-once. Unacked
     * deliveries are redelivered by the broker after a failure, so downstream must dedupe. Needs
     * checkpointing enabled, otherwise nothing is ever acked and the queue stops delivering once
     * {@code prefetch} messages per reader are in flight.
     */
    AFTER_CHECKPOINT,

    /**
     * Ack as soon as the record has been handed to Flink. For running without checkpointing (debugging,
     * local experiments): records buffered in Flink when a job fails are lost, so this is at-most-once for
     * them and at-least-once only for what the broker had not yet delivered.
     */
    ON_EMIT
}
