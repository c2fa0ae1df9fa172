package io.fleetsense.flink.amqp;

import com.rabbitmq.client.Address;
import com.rabbitmq.client.ConnectionFactory;
import io.fleetsense.flink.HostList;
import java.io.Serializable;
import java.net.InetAddress;
import java.net.Socket;
import java.net.UnknownHostException;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * Immutable, serialisable connection settings shipped from the client to every reader. The password
 * is part of the serialised form (readers need it) but never of {@link #toString()}.
 */
public final class AmqpConnectionConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    private static final Pattern IP_LITERAL = Pattern.compile("[0-9.]+|.*:.*");

    /** AMQP basic.qos prefetch-count is an unsigned 16-bit field. */
    static final int MAX_PREFETCH = 65535;
    /** The job setting amqp_heartbeat_s's bounds (cloud/job_settings.py); 0, "no heartbeats", is refused. */
    static final int MIN_HEARTBEAT_S = 1;
    static final int MAX_HEARTBEAT_S = 60;

    /** As given: one host, or the brokers of a cluster separated by commas. */
    private final String host;
    private final List<String> hosts;
    private final int port;
    private final String virtualHost;
    private final String username;
    private final String password;
    private final String queue;
    private final int prefetch;
    private final String connectionName;
    private final AmqpAckMode ackMode;
    private final boolean tls;
    /** Bundle mode when > 0: at most this many messages per emitted record (see {@link AmqpBundle}). */
    private final int bundleMessages;
    private final int bundleShards;
    /** Bundle mode: how long the oldest buffered delivery may wait for others to share its bundle. */
    private final int bundleLingerMs;
    /** The heartbeat asked of the broker: it gives up on a silent reader after about twice this. */
    private final int heartbeatS;

    AmqpConnectionConfig(
            String host,
            int port,
            String virtualHost,
            String username,
            String password,
            String queue,
            int prefetch,
            String connectionName,
            AmqpAckMode ackMode,
            boolean tls,
            int bundleMessages,
            int bundleShards,
            int bundleLingerMs,
            int heartbeatS) {
        this.host = requireText(host, "host");
        this.hosts = HostList.parse(host, "the AMQP host list");
        if (tls && hosts.size() > 1) {
            // The certificate check names one host (SNI, see configureTlsSocket); amqp-client's socket configurator
            // is not told which address of a list it connects to.
            throw new IllegalArgumentException("TLS takes one AMQP host (a load balancer's name), not the list " + host);
        }
        this.virtualHost = Objects.requireNonNull(virtualHost, "virtualHost");
        this.username = requireText(username, "username");
        this.password = Objects.requireNonNull(password, "password");
        this.queue = requireText(queue, "queue");
        this.connectionName = requireText(connectionName, "connectionName");
        this.ackMode = Objects.requireNonNull(ackMode, "ackMode");
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("port must be in 1..65535, got " + port);
        }
        if (prefetch < 1 || prefetch > MAX_PREFETCH) {
            // 0 would mean "unlimited" to the broker: an unbounded buffer in the reader.
            throw new IllegalArgumentException("prefetch must be in 1.." + MAX_PREFETCH + ", got " + prefetch);
        }
        this.port = port;
        this.prefetch = prefetch;
        this.tls = tls;
        if (bundleMessages < 0 || bundleMessages > AmqpBundle.MAX_COUNT) {
            throw new IllegalArgumentException(
                    "bundleMessages must be in 0.." + AmqpBundle.MAX_COUNT + ", got " + bundleMessages);
        }
        if (bundleShards < 1 || bundleShards > AmqpBundle.MAX_COUNT) {
            throw new IllegalArgumentException("bundleShards must be in 1.." + AmqpBundle.MAX_COUNT + ", got " + bundleShards);
        }
        this.bundleMessages = bundleMessages;
        this.bundleShards = bundleShards;
        if (bundleLingerMs < 0 || bundleLingerMs > 10_000) {
            throw new IllegalArgumentException("bundleLingerMs must be in 0..10000, got " + bundleLingerMs);
        }
        this.bundleLingerMs = bundleLingerMs;
        if (heartbeatS < MIN_HEARTBEAT_S || heartbeatS > MAX_HEARTBEAT_S) {
            throw new IllegalArgumentException(
                    "heartbeat must be in " + MIN_HEARTBEAT_S + ".." + MAX_HEARTBEAT_S + " s, got " + heartbeatS);
        }
        this.heartbeatS = heartbeatS;
    }

    private static String requireText(String value, String name) {
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException(name + " must be set");
        }
        return value;
    }

    public String host() {
        return host;
    }

    /** The brokers, in the order given. */
    public List<String> hosts() {
        return hosts;
    }

    /**
     * The brokers to try, in turn, starting at {@code first}: amqp-client tries a list in its order when automatic
     * recovery is off (it shuffles only for its own recovery), so this order is the failover order.
     */
    List<Address> addresses(int first) {
        List<Address> order = new ArrayList<>();
        for (String each : HostList.rotated(hosts, first)) {
            order.add(new Address(each, port));
        }
        return order;
    }

    /** The index in {@link #hosts()} of the broker at {@code address}, or -1. */
    int indexOf(InetAddress address) {
        for (int i = 0; i < hosts.size(); i++) {
            try {
                if (InetAddress.getByName(hosts.get(i)).equals(address)) {
                    return i;
                }
            } catch (UnknownHostException e) {
                // Not this one.
            }
        }
        return -1;
    }

    public int port() {
        return port;
    }

    public String virtualHost() {
        return virtualHost;
    }

    public String username() {
        return username;
    }

    public String queue() {
        return queue;
    }

    public int prefetch() {
        return prefetch;
    }

    public String connectionName() {
        return connectionName;
    }

    public AmqpAckMode ackMode() {
        return ackMode;
    }

    public boolean tls() {
        return tls;
    }

    public int bundleMessages() {
        return bundleMessages;
    }

    public int bundleShards() {
        return bundleShards;
    }

    public int bundleLingerMs() {
        return bundleLingerMs;
    }

    public int heartbeatS() {
        return heartbeatS;
    }

    /**
     * A factory for one reader. Automatic recovery is off: the reader's own reconnect loop must know
     * when a channel dies, because delivery tags of the dead channel must never be acked on a new one.
     */
    ConnectionFactory newConnectionFactory() throws NoSuchAlgorithmException {
        ConnectionFactory factory = new ConnectionFactory();
        factory.setHost(hosts.get(0)); // the connection is made with addresses(); this is only its default
        factory.setPort(port);
        factory.setVirtualHost(virtualHost);
        factory.setUsername(username);
        factory.setPassword(password);
        factory.setAutomaticRecoveryEnabled(false);
        factory.setTopologyRecoveryEnabled(false);
        factory.setConnectionTimeout(10_000);
        factory.setHandshakeTimeout(10_000);
        // Heartbeats detect a silently dead peer: the broker hands a reader's unacked messages to the others only
        // once it gives up on the reader's connection. A TaskManager cut off from the network holds them until
        // then, while the job restarted elsewhere reads on; they must come back within the sequencer's gap_wait_ms
        // (job_settings checks that 2 x heartbeat fits), or they arrive as a late batch and are not analysed.
        factory.setRequestedHeartbeat(heartbeatS);
        if (tls) {
            // The JVM's default trust store, and the host name checked against the certificate:
            // amqp-client's no-argument useSslProtocol() would trust every certificate.
            factory.useSslProtocol(SSLContext.getDefault());
            String expectedHost = host;
            factory.setSocketConfigurator(socket -> configureTlsSocket(socket, expectedHost));
        }
        return factory;
    }

    private static void configureTlsSocket(Socket socket, String expectedHost) throws java.io.IOException {
        socket.setTcpNoDelay(true);
        if (socket instanceof SSLSocket) {
            SSLSocket ssl = (SSLSocket) socket;
            SSLParameters params = ssl.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            // amqp-client creates the socket unconnected, so the JDK would check the certificate against
            // the resolved IP address; naming the host in SNI makes it check the configured name.
            if (!IP_LITERAL.matcher(expectedHost).matches()) {
                params.setServerNames(Collections.singletonList(new SNIHostName(expectedHost)));
            }
            ssl.setSSLParameters(params);
        }
    }

    @Override
    public String toString() {
        return "AmqpConnectionConfig{"
                + (tls ? "amqps://" : "amqp://")
                + username + "@" + host + ":" + port + "/" + virtualHost
                + ", queue=" + queue
                + ", prefetch=" + prefetch
                + ", connectionName=" + connectionName
                + ", ackMode=" + ackMode
                + (bundleMessages > 0 ? ", bundles of <=" + bundleMessages + " in " + bundleShards + " shards, linger " + bundleLingerMs + " ms" : "")
                + ", password=***}";
    }
}
