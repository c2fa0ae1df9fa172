package io.fleetsense.flink.amqp;

/** Builds an {@link AmqpSource}; host, username, password and queue are required. */
public final class AmqpSourceBuilder {
    public static final int DEFAULT_PREFETCH = 1000;
    public static final String DEFAULT_CONNECTION_NAME = "fleetsense-flink";
    public static final int DEFAULT_HEARTBEAT_S = 5;

    private String host;
    private Integer port;
    private String virtualHost = "/";
    private String username;
    private String password;
    private String queue;
    private int prefetch = DEFAULT_PREFETCH;
    private String connectionName = DEFAULT_CONNECTION_NAME;
    private AmqpAckMode ackMode = AmqpAckMode.AFTER_CHECKPOINT;
    private boolean tls;
    private int bundleMessages;
    private int bundleShards = 1;
    private int bundleLingerMs;
    private int heartbeatS = DEFAULT_HEARTBEAT_S;

    AmqpSourceBuilder() {}

    public AmqpSourceBuilder setHost(String host) {
        this.host = host;
        return this;
    }

    /** Defaults to 5672, or 5671 with TLS. */
    public AmqpSourceBuilder setPort(int port) {
        this.port = port;
        return this;
    }

    public AmqpSourceBuilder setVirtualHost(String virtualHost) {
        this.virtualHost = virtualHost;
        return this;
    }

    public AmqpSourceBuilder setUsername(String username) {
        this.username = username;
        return this;
    }

    public AmqpSourceBuilder setPassword(String password) {
        this.password = password;
        return this;
    }

    public AmqpSourceBuilder setQueue(String queue) {
        this.queue = queue;
        return this;
    }

    /**
     * Unacked deliveries the broker may have in flight per reader (basic.qos). With
     * {@link AmqpAckMode#AFTER_CHECKPOINT} this also caps throughput per reader at about
     * prefetch / checkpoint interval, because nothing is acked between checkpoints.
     */
    public AmqpSourceBuilder setPrefetch(int prefetch) {
        this.prefetch = prefetch;
        return this;
    }

    /** Shown by the broker (rabbitmqctl list_connections client_properties); the subtask index is appended. */
    public AmqpSourceBuilder setConnectionName(String connectionName) {
        this.connectionName = connectionName;
        return this;
    }

    public AmqpSourceBuilder setAckMode(AmqpAckMode ackMode) {
        this.ackMode = ackMode;
        return this;
    }

    /** For callers that cannot reach the enum easily (Py4J): "AFTER_CHECKPOINT" or "ON_EMIT". */
    public AmqpSourceBuilder setAckMode(String ackMode) {
        this.ackMode = AmqpAckMode.valueOf(ackMode);
        return this;
    }

    /** TLS with the JVM's default trust store and host name verification. */
    public AmqpSourceBuilder setTls(boolean tls) {
        this.tls = tls;
        return this;
    }

    /**
     * Bundle mode: each record carries up to {@code maxMessages} messages of one of {@code shards} shards
     * (an {@link AmqpBundle}) instead of one {@link AmqpEnvelope}. A poll waits until {@code maxMessages}
     * deliveries are buffered or the oldest has waited {@code lingerMs}, then takes everything buffered.
     */
    public AmqpSourceBuilder setBundles(int maxMessages, int shards, int lingerMs) {
        this.bundleMessages = maxMessages;
        this.bundleShards = shards;
        this.bundleLingerMs = lingerMs;
        return this;
    }

    /** The AMQP heartbeat asked of the broker, in seconds (1..60): how soon a dead reader's messages return. */
    public AmqpSourceBuilder setHeartbeatSeconds(int heartbeatS) {
        this.heartbeatS = heartbeatS;
        return this;
    }

    public AmqpSource build() {
        int effectivePort = port != null ? port : (tls ? 5671 : 5672);
        return new AmqpSource(new AmqpConnectionConfig(
                host, effectivePort, virtualHost, username, password, queue, prefetch, connectionName, ackMode, tls,
                bundleMessages, bundleShards, bundleLingerMs, heartbeatS));
    }
}
