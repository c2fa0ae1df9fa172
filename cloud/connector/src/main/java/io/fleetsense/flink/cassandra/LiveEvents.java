package io.fleetsense.flink.cassandra;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Address;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import io.fleetsense.flink.HostList;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;

/**
 * Where the sink publishes the live feed (docs/service.md, "Live events"): the broker as the job's AMQP source
 * reaches it (the same brokers, virtual host, user and heartbeat), the topic exchange, and the statement whose
 * acknowledged writes are the stored events (one per event). Serialised with the sink to every writer; the password
 * never appears in {@link #toString()}.
 */
final class LiveEvents implements Serializable {
    private static final long serialVersionUID = 1L;
    /** Messages waiting for the publishing thread; more are dropped (a burst the broker cannot take). */
    static final int QUEUE_SIZE = 10_000;
    static final long FIRST_BACKOFF_MS = 500;
    /** The event row's columns the message is made of (cloud/tables.py's vehicle_events). */
    static final List<String> COLUMNS = List.of(
            "vehicle_id", "kind", "start_time", "end_time", "duration_ms", "peak", "peak_unit", "detected_at");

    final String host;
    final int port;
    final String virtualHost;
    final String username;
    final String password;
    final int heartbeatS;
    final String exchange;
    final String statement;

    LiveEvents(String host, int port, String virtualHost, String username, String password, int heartbeatS,
            String exchange, String statement) {
        HostList.parse(host, "the live events' AMQP host list");
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("live events: AMQP port " + port + " is not in 1..65535");
        }
        if (username == null || username.isEmpty() || password == null) {
            throw new IllegalArgumentException("live events: give the job's broker user and password");
        }
        if (heartbeatS < 1 || heartbeatS > 60) {
            throw new IllegalArgumentException("live events: heartbeat " + heartbeatS + " s is not in 1..60");
        }
        if (exchange == null || exchange.isEmpty() || statement == null || statement.isEmpty()) {
            throw new IllegalArgumentException("live events: name the exchange and the event statement");
        }
        this.host = host;
        this.port = port;
        this.virtualHost = virtualHost == null ? "/" : virtualHost;
        this.username = username;
        this.password = password;
        this.heartbeatS = heartbeatS;
        this.exchange = exchange;
        this.statement = statement;
    }

    /** A connector to the brokers in the order given (amqp-client tries a list in turn), recovery left to us. */
    EventPublisher.Connector connector(String connectionName) {
        List<Address> addresses = new ArrayList<>();
        for (String each : HostList.parse(host, "the live events' AMQP host list")) {
            addresses.add(new Address(each, port));
        }
        ConnectionFactory factory = new ConnectionFactory();
        factory.setVirtualHost(virtualHost);
        factory.setUsername(username);
        factory.setPassword(password);
        factory.setAutomaticRecoveryEnabled(false); // EventPublisher reconnects, with its back-off
        factory.setTopologyRecoveryEnabled(false);
        factory.setConnectionTimeout(5_000);
        factory.setHandshakeTimeout(5_000);
        factory.setRequestedHeartbeat(heartbeatS);
        AMQP.BasicProperties properties = new AMQP.BasicProperties.Builder()
                .contentType("application/json")
                .deliveryMode(1) // transient: the feed is best effort, the event is stored in Cassandra
                .build();
        return () -> {
            Connection connection;
            try {
                connection = factory.newConnection(addresses, connectionName);
            } catch (TimeoutException e) {
                throw new IOException("connecting to " + host + ":" + port + " timed out", e);
            }
            com.rabbitmq.client.Channel channel;
            try {
                channel = connection.createChannel();
            } catch (IOException | RuntimeException e) {
                connection.abort();
                throw e;
            }
            return new EventPublisher.Channel() {
                @Override
                public void publish(String routingKey, EventMessage message) throws IOException {
                    channel.basicPublish(exchange, routingKey, properties, message.body);
                }

                @Override
                public void close() {
                    connection.abort(1_000);
                }
            };
        };
    }

    @Override
    public String toString() {
        return "LiveEvents(amqp://" + username + "@" + host + ":" + port + "/" + virtualHost + ", exchange " + exchange
                + ", after " + statement + ", password=***)";
    }
}
