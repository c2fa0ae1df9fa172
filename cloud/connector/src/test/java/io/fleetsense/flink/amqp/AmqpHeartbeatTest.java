package io.fleetsense.flink.amqp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The heartbeat a reader asks of the broker: how soon a dead reader's unacked messages go back to the others. */
class AmqpHeartbeatTest {
    private static AmqpConnectionConfig config(int heartbeatS) {
        return new AmqpConnectionConfig("localhost", 5672, "fleet", "flink", "secret", "telemetry", 8, "test",
                AmqpAckMode.AFTER_CHECKPOINT, false, 0, 1, 0, heartbeatS);
    }

    @Test
    void theFactoryAsksForTheConfiguredHeartbeat() throws Exception {
        assertEquals(7, config(7).newConnectionFactory().getRequestedHeartbeat());
    }

    @Test
    void theBuilderDefaultsToFiveSeconds() {
        assertEquals(5, AmqpSourceBuilder.DEFAULT_HEARTBEAT_S);
    }

    @Test
    void noHeartbeatOrAnHourLongOneIsRefused() {
        // 0 would switch heartbeats off: a dead TaskManager's messages would wait for TCP to give up (minutes).
        assertThrows(IllegalArgumentException.class, () -> config(0));
        assertThrows(IllegalArgumentException.class, () -> config(61));
    }
}
