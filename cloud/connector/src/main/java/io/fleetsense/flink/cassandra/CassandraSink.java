package io.fleetsense.flink.cassandra;

import io.fleetsense.flink.HostList;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;

/**
 * A Flink sink that executes the writes of {@link SinkRecord}s against Cassandra with the Apache Cassandra Java
 * driver: asynchronously, a bounded number in flight, retried with back-off, and all acknowledged before Flink
 * forwards a checkpoint barrier (SinkWriter.flush runs in prepareSnapshotPreBarrier), so a checkpoint, and with
 * it the broker's acknowledgement of its input, completes only after its writes are stored.
 *
 * <p>Built from Python (fleetsense.cloud.cassandra_sink) with {@link #builder()}: the job's prepared INSERTs by
 * statement name and their consistency levels come from cloud/tables.py, so nothing about a table is repeated here.
 */
public final class CassandraSink implements Sink<byte[]> {
    private static final long serialVersionUID = 1L;

    /** The CQL consistency levels a statement may name (those a local-datacenter writer would use). */
    static final Set<String> CONSISTENCY_LEVELS =
            Set.of("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE", "LOCAL_QUORUM", "EACH_QUORUM", "ANY");

    /** As given: one contact point, or every node of the ring separated by commas. */
    final String host;
    final int port;
    /** The datacenter the driver sends requests to (LOCAL_QUORUM's "local"); empty: the contact points'. */
    final String localDatacenter;
    final String username;
    final String password;
    final Map<String, String> cql;
    final Map<String, String> consistency;
    final int maxInFlight;
    final int attempts;
    final long firstBackoffMs;
    final long requestTimeoutMs;
    /** Where each stored event is published after its write (null: no live feed). */
    final LiveEvents liveEvents;

    private CassandraSink(Builder b) {
        this.host = b.host;
        this.port = b.port;
        this.localDatacenter = b.localDatacenter;
        this.username = b.username;
        this.password = b.password;
        this.cql = new LinkedHashMap<>(b.cql);
        this.consistency = new LinkedHashMap<>(b.consistency);
        this.maxInFlight = b.maxInFlight;
        this.attempts = b.attempts;
        this.firstBackoffMs = b.firstBackoffMs;
        this.requestTimeoutMs = b.requestTimeoutMs;
        this.liveEvents = b.liveEvents;
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public SinkWriter<byte[]> createWriter(WriterInitContext context) throws IOException {
        return CassandraSinkWriter.open(this, context.metricGroup(),
                context.getUserCodeClassLoader().asClassLoader(), context.getTaskInfo().getIndexOfThisSubtask());
    }

    /** Flink 1.20 calls the method above; this older one is only kept by the interface. */
    @Override
    @Deprecated
    public SinkWriter<byte[]> createWriter(Sink.InitContext context) throws IOException {
        throw new UnsupportedOperationException("CassandraSink needs Flink's WriterInitContext (Flink 1.19+)");
    }

    @Override
    public String toString() {
        return "CassandraSink(" + host + ":" + port + ", " + cql.size() + " statements, user "
                + (username.isEmpty() ? "none" : username) + (liveEvents == null ? "" : ", " + liveEvents) + ")";
    }

    /** Settings checked when {@link #build()} is called, so a mistake fails the submit, not the running job. */
    public static final class Builder {
        private String host = "127.0.0.1";
        private int port = 9042;
        private String localDatacenter = "";
        private String username = "";
        private String password = "";
        private final Map<String, String> cql = new LinkedHashMap<>();
        private final Map<String, String> consistency = new LinkedHashMap<>();
        private int maxInFlight = 128;
        private int attempts = 5;
        private long firstBackoffMs = 100;
        private long requestTimeoutMs = 10_000;
        private LiveEvents liveEvents;

        public Builder setContact(String host, int port) {
            this.host = host;
            this.port = port;
            return this;
        }

        /** The local datacenter's name ("datacenter1" for a single node); empty: the one of the contact points. */
        public Builder setLocalDatacenter(String name) {
            this.localDatacenter = name == null ? "" : name.trim();
            return this;
        }

        /** Both empty: a cluster without login. */
        public Builder setLogin(String username, String password) {
            this.username = username;
            this.password = password;
            return this;
        }

        /** A statement the records may name: its CQL (keyspace included) and its consistency level's name. */
        public Builder addStatement(String name, String cqlText, String consistencyLevel) {
            cql.put(name, cqlText);
            consistency.put(name, consistencyLevel);
            return this;
        }

        public Builder setMaxInFlight(int writes) {
            this.maxInFlight = writes;
            return this;
        }

        /** {@code attempts} sends of a write at most, the first retry after {@code firstBackoffMs}, doubling. */
        public Builder setRetries(int attempts, long firstBackoffMs) {
            this.attempts = attempts;
            this.firstBackoffMs = firstBackoffMs;
            return this;
        }

        public Builder setRequestTimeoutMs(long ms) {
            this.requestTimeoutMs = ms;
            return this;
        }

        /**
         * Publish each stored event to the topic exchange {@code exchange} once {@code statement}'s write of it is
         * acknowledged (docs/service.md, "Live events"), through the brokers the job's AMQP source reads: one
         * connection per writer, best effort (a broker outage drops live events, never a write).
         */
        public Builder setLiveEvents(String amqpHost, int amqpPort, String virtualHost, String amqpUsername,
                String amqpPassword, int heartbeatS, String exchange, String statement) {
            this.liveEvents = new LiveEvents(amqpHost, amqpPort, virtualHost, amqpUsername, amqpPassword, heartbeatS,
                    exchange, statement);
            return this;
        }

        public CassandraSink build() {
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("Cassandra port " + port + " is not in 1..65535");
            }
            HostList.parse(host, "the Cassandra contact points");
            if (username.isEmpty() != password.isEmpty()) {
                throw new IllegalArgumentException("give both a Cassandra username and password, or neither");
            }
            if (cql.isEmpty()) {
                throw new IllegalArgumentException("no statements: call addStatement for each the records name");
            }
            for (Map.Entry<String, String> level : consistency.entrySet()) {
                if (!CONSISTENCY_LEVELS.contains(level.getValue())) {
                    throw new IllegalArgumentException("statement " + level.getKey() + ": consistency level "
                            + level.getValue() + " is not one of " + CONSISTENCY_LEVELS);
                }
            }
            if (liveEvents != null && !cql.containsKey(liveEvents.statement)) {
                throw new IllegalArgumentException("live events follow statement " + liveEvents.statement
                        + ", which is not one of " + cql.keySet());
            }
            if (maxInFlight < 1 || attempts < 1 || firstBackoffMs < 0 || requestTimeoutMs < 1) {
                throw new IllegalArgumentException("maxInFlight " + maxInFlight + ", attempts " + attempts
                        + ", firstBackoffMs " + firstBackoffMs + ", requestTimeoutMs " + requestTimeoutMs
                        + ": each must be at least 1 (the back-off at least 0)");
            }
            return new CassandraSink(this);
        }
    }
}
