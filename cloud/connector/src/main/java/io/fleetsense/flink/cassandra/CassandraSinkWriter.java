package io.fleetsense.flink.cassandra;

import com.datastax.oss.driver.api.core.AllNodesFailedException;
import com.datastax.oss.driver.api.core.ConsistencyLevel;
import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.DefaultConsistencyLevel;
import com.datastax.oss.driver.api.core.DriverTimeoutException;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.connection.BusyConnectionException;
import com.datastax.oss.driver.api.core.connection.ClosedConnectionException;
import com.datastax.oss.driver.api.core.connection.HeartbeatException;
import com.datastax.oss.driver.api.core.cql.BoundStatement;
import com.datastax.oss.driver.api.core.cql.BoundStatementBuilder;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import com.datastax.oss.driver.api.core.servererrors.OverloadedException;
import com.datastax.oss.driver.api.core.servererrors.ReadTimeoutException;
import com.datastax.oss.driver.api.core.servererrors.TruncateException;
import com.datastax.oss.driver.api.core.servererrors.UnavailableException;
import com.datastax.oss.driver.api.core.servererrors.WriteTimeoutException;
import io.fleetsense.flink.HostList;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.groups.SinkWriterMetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One sink subtask: one driver session, the job's statements prepared once, each record's writes bound from
 * their serialised values and sent through {@link AsyncWrites}. The analysis operator before it runs at the same
 * parallelism and is connected forward, so a vehicle's writes all pass through one writer, whose
 * {@link WriteTimestamps} order them (docs/cloud-etl.md, "Write order").
 */
final class CassandraSinkWriter implements SinkWriter<byte[]> {
    private static final Logger LOG = LoggerFactory.getLogger(CassandraSinkWriter.class);
    private static final Duration SESSION_REQUEST_TIMEOUT = Duration.ofSeconds(30);

    private final CqlSession session;
    private final Map<String, PreparedStatement> prepared;
    private final Map<String, ConsistencyLevel> consistency;
    private final ScheduledExecutorService retryTimer;
    private final AsyncWrites<BoundStatement> writes;
    private final WriteTimestamps timestamps = new WriteTimestamps(System::currentTimeMillis);
    private final Duration writeTimeout;
    private final Counter writesSent;
    /** The statement whose acknowledged writes are published, and where (both null: no live feed). */
    private final String eventStatement;
    private final EventPublisher events;

    private CassandraSinkWriter(CassandraSink sink, CqlSession session, SinkWriterMetricGroup metrics,
            int subtask) throws IOException {
        this.session = session;
        this.writeTimeout = Duration.ofMillis(sink.requestTimeoutMs);
        this.prepared = new HashMap<>();
        this.consistency = new HashMap<>();
        for (Map.Entry<String, String> statement : sink.cql.entrySet()) {
            prepared.put(statement.getKey(), session.prepare(statement.getValue()));
            consistency.put(statement.getKey(), DefaultConsistencyLevel.valueOf(sink.consistency.get(statement.getKey())));
        }
        this.retryTimer = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, "fleetsense-cassandra-sink-retries");
            thread.setDaemon(true);
            return thread;
        });
        this.writes = new AsyncWrites<>(session::executeAsync, CassandraSinkWriter::retryable, retryTimer,
                sink.maxInFlight, sink.attempts, sink.firstBackoffMs);
        this.writesSent = metrics.getNumRecordsSendCounter();
        metrics.gauge("cassandraWritesInFlight", writes::inFlight);
        metrics.gauge("cassandraWritesAcknowledged", writes.acknowledged::get);
        metrics.gauge("cassandraWriteRetries", writes.retries::get);
        if (sink.liveEvents == null) {
            this.eventStatement = null;
            this.events = null;
        } else {
            this.eventStatement = sink.liveEvents.statement;
            checkEventColumns(prepared.get(eventStatement));
            this.events = new EventPublisher(sink.liveEvents.connector("fleetsense live events: sink " + subtask),
                    LiveEvents.QUEUE_SIZE, LiveEvents.FIRST_BACKOFF_MS, System::currentTimeMillis,
                    "fleetsense-live-events-" + subtask);
            LOG.info("Cassandra sink {} publishes live events: {}", subtask, sink.liveEvents);
            metrics.gauge("liveEventsPublished", events.published::get);
            metrics.gauge("liveEventsDropped", events.dropped::get);
            metrics.gauge("liveEventsQueued", events::queued);
        }
    }

    /** The event statement binds every column a message is made of (so a renamed column fails the start). */
    private void checkEventColumns(PreparedStatement statement) throws IOException {
        for (String column : LiveEvents.COLUMNS) {
            if (!statement.getVariableDefinitions().contains(column)) {
                throw new IOException("the live events' statement " + eventStatement + " binds no " + column
                        + ": it binds " + statement.getVariableDefinitions().size() + " markers; see LiveEvents.COLUMNS");
            }
        }
    }

    /** Every node of the sink's host list, unresolved: the driver resolves them itself (and again on reconnect). */
    static List<InetSocketAddress> contactPoints(CassandraSink sink) {
        List<InetSocketAddress> points = new ArrayList<>();
        for (String host : HostList.parse(sink.host, "the Cassandra contact points")) {
            points.add(InetSocketAddress.createUnresolved(host, sink.port));
        }
        return points;
    }

    static CassandraSinkWriter open(CassandraSink sink, SinkWriterMetricGroup metrics, ClassLoader classLoader,
            int subtask) throws IOException {
        DriverConfigLoader config = DriverConfigLoader.programmaticBuilder(classLoader)
                // Preparing and the driver's own requests; each write has the sink's request time-out.
                .withDuration(DefaultDriverOption.REQUEST_TIMEOUT, SESSION_REQUEST_TIMEOUT)
                // Requests go to the local datacenter's nodes (token-aware among them): the named one, or else
                // the contact points' (DcInferring, the single-node stack's way).
                .withString(DefaultDriverOption.LOAD_BALANCING_POLICY_CLASS,
                        sink.localDatacenter.isEmpty() ? "DcInferringLoadBalancingPolicy" : "DefaultLoadBalancingPolicy")
                // One connection per node carries 2,048 requests at once on protocol v3+: enough for maxInFlight.
                .withInt(DefaultDriverOption.CONNECTION_MAX_REQUESTS, Math.max(1024, sink.maxInFlight * 2))
                .build();
        var builder = CqlSession.builder()
                .withClassLoader(classLoader)
                .withConfigLoader(config)
                // Every node given: the session opens while any one of them answers.
                .addContactPoints(contactPoints(sink));
        if (!sink.localDatacenter.isEmpty()) {
            builder = builder.withLocalDatacenter(sink.localDatacenter);
        }
        if (!sink.username.isEmpty()) {
            builder = builder.withAuthCredentials(sink.username, sink.password);
        }
        CqlSession session;
        try {
            session = builder.build();
        } catch (RuntimeException e) {
            throw new IOException("the Cassandra sink cannot connect to " + sink.host + ":" + sink.port + ": " + e
                    + " (the job restarts and tries again)", e);
        }
        try {
            return new CassandraSinkWriter(sink, session, metrics, subtask);
        } catch (IOException | RuntimeException e) {
            session.close();
            throw new IOException("the Cassandra sink cannot prepare its statements: " + e, e);
        }
    }

    @Override
    public void write(byte[] record, Context context) throws IOException, InterruptedException {
        List<SinkRecord.Write> rows = SinkRecord.decode(record);
        for (SinkRecord.Write row : rows) {
            BoundStatement bound = bind(row);
            EventMessage message = events != null && row.statement.equals(eventStatement) ? messageOrNull(bound) : null;
            if (message != null) {
                writes.submit(bound, () -> events.offer(message));
            } else {
                writes.submit(bound);
            }
            writesSent.inc();
        }
    }

    BoundStatement bind(SinkRecord.Write row) throws IOException {
        PreparedStatement statement = prepared.get(row.statement);
        if (statement == null) {
            throw new IOException("a sink record names statement " + row.statement + ", which the sink was not given"
                    + " (it has " + prepared.keySet() + "): the job's Python code and its settings disagree");
        }
        int markers = statement.getVariableDefinitions().size();
        if (markers != row.values.length) {
            throw new IOException("statement " + row.statement + " has " + markers + " markers, its record "
                    + row.values.length + " values");
        }
        BoundStatementBuilder bound = statement.boundStatementBuilder();
        for (int i = 0; i < markers; i++) {
            if (row.values[i] != SinkRecord.UNSET) {
                bound.setBytesUnsafe(i, row.values[i]);
            }
        }
        return bound.setConsistencyLevel(consistency.get(row.statement))
                .setIdempotence(Boolean.TRUE)
                .setTimeout(writeTimeout)
                .setQueryTimestamp(timestamps.next())
                .build();
    }

    /** The message, or null (counted as dropped) for a row it cannot be made of: the feed never fails a write. */
    private EventMessage messageOrNull(BoundStatement row) {
        try {
            return message(row);
        } catch (RuntimeException e) { // a null column (NullPointerException), a value of another type
            events.dropped.incrementAndGet();
            LOG.warn("live events: no message for a {} row: {}", eventStatement, e.toString());
            return null;
        }
    }

    /** The live feed's message of an event row, read back from its bound values by column name. */
    static EventMessage message(BoundStatement row) {
        return EventMessage.of(row.getString("vehicle_id"), row.getString("kind"),
                row.getInstant("start_time").toEpochMilli(), row.getInstant("end_time").toEpochMilli(),
                row.getInt("duration_ms"), row.getFloat("peak"), row.getString("peak_unit"),
                row.getInstant("detected_at").toEpochMilli());
    }

    @Override
    public void flush(boolean endOfInput) throws IOException, InterruptedException {
        writes.flush();
    }

    @Override
    public void close() {
        LOG.info("Cassandra sink closing: {} writes acknowledged, {} retried, {} in flight", writes.acknowledged.get(),
                writes.retries.get(), writes.inFlight());
        retryTimer.shutdownNow();
        session.close();
        if (events != null) {
            events.close();
            LOG.info("live events: {} published, {} dropped", events.published.get(), events.dropped.get());
        }
    }

    /** Failures another attempt may cure: time-outs, an overloaded or unreachable node, a broken connection. */
    static boolean retryable(Throwable error) {
        return error instanceof DriverTimeoutException
                || error instanceof WriteTimeoutException
                || error instanceof ReadTimeoutException
                || error instanceof UnavailableException
                || error instanceof OverloadedException
                || error instanceof TruncateException
                || error instanceof AllNodesFailedException
                || error instanceof BusyConnectionException
                || error instanceof ClosedConnectionException
                || error instanceof HeartbeatException;
    }
}
