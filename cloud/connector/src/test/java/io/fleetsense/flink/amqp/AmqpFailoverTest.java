package io.fleetsense.flink.amqp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.rabbitmq.client.Address;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The source's brokers on a cluster: the order it tries them in, and that a dead one is passed over. */
class AmqpFailoverTest {
    private static AmqpConnectionConfig config(String hosts, int port, boolean tls) {
        return new AmqpConnectionConfig(hosts, port, "fleet", "flink", "secret", "telemetry", 8, "test",
                AmqpAckMode.ON_EMIT, tls, 0, 1, 0, 5);
    }

    private static List<String> hosts(List<Address> addresses) {
        return addresses.stream().map(Address::getHost).collect(Collectors.toList());
    }

    @Test
    void theBrokersAreTriedInTheirOrderAndAfterALossFromTheNext() {
        AmqpConnectionConfig c = config("10.77.0.11,10.77.0.12,10.77.0.13", 5672, false);
        assertEquals(List.of("10.77.0.11", "10.77.0.12", "10.77.0.13"), hosts(c.addresses(0)));
        // After losing its connection to the second broker, a reader tries the third first, then wraps round.
        assertEquals(List.of("10.77.0.13", "10.77.0.11", "10.77.0.12"), hosts(c.addresses(2)));
        assertTrue(c.addresses(1).stream().allMatch(a -> a.getPort() == 5672));
    }

    @Test
    void aDeadFirstBrokerIsPassedOverForTheNext() throws Exception {
        // Nothing listens on 127.0.0.2 at the port the "second broker" holds on 127.0.0.3: the first is dead.
        try (ServerSocket second = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.3"))) {
            AmqpConnectionConfig c = config("127.0.0.2,127.0.0.3", second.getLocalPort(), false);
            AtomicBoolean reached = new AtomicBoolean();
            Thread broker = new Thread(() -> {
                try (Socket ignored = second.accept()) {
                    reached.set(true); // and hang up: no AMQP spoken, so the connection fails after reaching it
                } catch (IOException e) {
                    // The test fails on `reached`.
                }
            });
            broker.start();
            assertThrows(Exception.class, () -> c.newConnectionFactory().newConnection(c.addresses(0), "test"));
            broker.join(10_000);
            assertTrue(reached.get(), "the source never tried the second broker after the first refused");
            assertEquals(1, c.indexOf(InetAddress.getByName("127.0.0.3")));
        }
    }

    @Test
    void tlsTakesOneHost() {
        assertThrows(IllegalArgumentException.class, () -> config("a,b", 5671, true));
        assertEquals(List.of("rmq.example.com"), config("rmq.example.com", 5671, true).hosts());
    }
}
