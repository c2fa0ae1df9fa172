package io.fleetsense.flink.amqp;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.AuthenticationFailureException;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.Method;
import com.rabbitmq.client.PossibleAuthenticationFailureException;
import com.rabbitmq.client.ShutdownSignalException;
import java.io.IOException;
import java.security.cert.CertificateException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.metrics.Counter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One reader's connection to the broker: connect, consume, ack, and the reconnect loop.
 *
 * <p>Every connection operation (connect, reconnect, ack, close) runs on one I/O thread, so they
 * never race each other and never block Flink's task thread. Each channel gets a new generation
 * number; a delivery tag is only acked on the channel generation that produced it. When a channel
 * dies, its buffered deliveries and pending acks are void and the broker redelivers them.
 */
final class AmqpConsumerSession implements AmqpConsumer {
    private static final Logger LOG = LoggerFactory.getLogger(AmqpConsumerSession.class);

    static final long MIN_BACKOFF_MS = 500;
    static final long MAX_BACKOFF_MS = 30_000;
    private static final int CLOSE_TIMEOUT_MS = 3_000;

    /** Callbacks into the reader. */
    interface Listener {
        /** On the connection's dispatch thread; may block while the reader's buffer is full. */
        void onDelivery(AmqpDelivery delivery) throws InterruptedException;

        /** On the I/O thread, after a channel generation died: its buffered deliveries are void. */
        void onChannelLost(long generation);

        /** The first connection failed in a way retrying will not fix (credentials, missing queue). */
        void onFatalError(Exception error);
    }

    private final AmqpConnectionConfig config;
    private final String clientName;
    private final Listener listener;
    private final Counter reconnects;
    private final Counter ackFailures;
    private final ScheduledExecutorService io;
    private final ExecutorService dispatch;

    /** Generation of the channel that may be consumed from and acked on; 0 while there is none. */
    private final AtomicLong activeGeneration = new AtomicLong();
    private volatile boolean closed;

    // Owned by the I/O thread.
    private long generationCounter;
    private Connection connection;
    private Channel channel;
    private long connectionGeneration;
    private long backoffMs = MIN_BACKOFF_MS;
    private boolean everConsumed;
    /**
     * Which broker of the list the next connection tries first: the first given, and after a loss the one after the
     * lost one (which may be dead). Every reader starts on the same broker: a quorum queue's consumers are served
     * by its leader's node whichever node they connect to, so spreading them would spread no load.
     */
    private int firstHost;
    private int connectedHost = -1;

    AmqpConsumerSession(
            AmqpConnectionConfig config, String clientName, Listener listener, Counter reconnects, Counter ackFailures) {
        this.config = config;
        this.clientName = clientName;
        this.listener = listener;
        this.reconnects = reconnects;
        this.ackFailures = ackFailures;
        this.io = Executors.newSingleThreadScheduledExecutor(daemon(clientName + "-io"));
        this.dispatch = Executors.newSingleThreadExecutor(daemon(clientName + "-dispatch"));
    }

    @Override
    public void start() {
        submit(this::connect);
    }

    @Override
    public long activeGeneration() {
        return activeGeneration.get();
    }

    @Override
    public void ack(long generation, long deliveryTag) {
        submit(() -> doAck(generation, deliveryTag));
    }

    private void connect() {
        if (closed) {
            return;
        }
        long generation = ++generationCounter;
        Connection conn = null;
        try {
            conn = config.newConnectionFactory().newConnection(dispatch, config.addresses(firstHost), clientName);
            connectedHost = config.indexOf(conn.getAddress());
            Channel ch = conn.createChannel();
            ch.basicQos(config.prefetch());
            connection = conn;
            channel = ch;
            connectionGeneration = generation;
            // Active before basicConsume: the first deliveries can arrive before it returns.
            activeGeneration.set(generation);
            // Fires for channel and connection closure alike, also if already closed when added.
            ch.addShutdownListener(cause -> onLost(generation, describe(cause)));
            String consumerTag = ch.basicConsume(config.queue(), false, new DeliveryConsumer(ch, generation));
            if (closed) {
                // close() gave up waiting for this attempt (a slow connect) and dropped its own
                // clean-up task, so this attempt must not leave a consumer behind.
                activeGeneration.set(0);
                connection = null;
                channel = null;
                closeQuietly(conn);
                return;
            }
            LOG.info("{}: consuming {} on channel generation {} (consumer tag {})",
                    clientName, config, generation, consumerTag);
            backoffMs = MIN_BACKOFF_MS;
            everConsumed = true;
        } catch (Exception e) {
            activeGeneration.compareAndSet(generation, 0);
            connection = null;
            channel = null;
            closeQuietly(conn);
            if (!everConsumed && isPermanent(e)) {
                LOG.error("{}: cannot consume from {}: {}", clientName, config, describe(e));
                listener.onFatalError(e);
                return;
            }
            LOG.warn("{}: cannot consume from {} ({}); retrying in {} ms",
                    clientName, config, describe(e), backoffMs);
            scheduleConnect();
        }
    }

    private void scheduleConnect() {
        long delay = backoffMs;
        backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
        try {
            io.schedule(this::connect, delay, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException e) {
            // Closing.
        }
    }

    /** From any amqp-client thread: a channel generation is gone. */
    private void onLost(long generation, String reason) {
        activeGeneration.compareAndSet(generation, 0);
        submit(() -> handleLost(generation, reason));
    }

    private void handleLost(long generation, String reason) {
        if (closed || connection == null || connectionGeneration != generation) {
            return; // Already handled (several callbacks report the same loss).
        }
        LOG.warn("{}: channel generation {} lost ({}); unacked deliveries will be redelivered by the broker;"
                + " reconnecting in {} ms", clientName, generation, reason, backoffMs);
        Connection conn = connection;
        connection = null;
        channel = null;
        closeQuietly(conn);
        if (connectedHost >= 0) {
            firstHost = connectedHost + 1; // its broker may be the one that died: try the next first
        }
        listener.onChannelLost(generation);
        reconnects.inc();
        scheduleConnect();
    }

    private void doAck(long generation, long deliveryTag) {
        Channel ch = channel;
        if (closed || ch == null || generation != activeGeneration.get() || !ch.isOpen()) {
            LOG.info("{}: dropping ack up to tag {} of lost channel generation {}; the broker redelivers those",
                    clientName, deliveryTag, generation);
            return;
        }
        try {
            ch.basicAck(deliveryTag, true);
        } catch (IOException | ShutdownSignalException e) {
            // ShutdownSignalException covers AlreadyClosedException. The job carries on: the broker
            // redelivers what this ack would have covered, downstream dedupes.
            ackFailures.inc();
            LOG.warn("{}: ack up to tag {} on channel generation {} failed ({}); reconnecting",
                    clientName, deliveryTag, generation, describe(e));
            onLost(generation, "ack failed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        activeGeneration.set(0);
        submit(() -> {
            closeQuietly(connection);
            connection = null;
            channel = null;
        });
        io.shutdown();
        try {
            if (!io.awaitTermination(CLOSE_TIMEOUT_MS + 2_000, TimeUnit.MILLISECONDS)) {
                io.shutdownNow();
            }
        } catch (InterruptedException e) {
            io.shutdownNow();
            Thread.currentThread().interrupt();
        }
        dispatch.shutdownNow();
    }

    private void submit(Runnable task) {
        try {
            io.execute(task);
        } catch (RejectedExecutionException e) {
            // The session is closing; nothing left to do.
        }
    }

    private void closeQuietly(Connection conn) {
        if (conn == null) {
            return;
        }
        try {
            if (conn.isOpen()) {
                conn.close(CLOSE_TIMEOUT_MS);
            } else {
                conn.abort(CLOSE_TIMEOUT_MS);
            }
        } catch (IOException | RuntimeException e) {
            LOG.debug("{}: error while closing connection: {}", clientName, describe(e));
        }
    }

    /**
     * Errors that a retry cannot fix (credentials, missing queue, vhost access, untrusted certificate),
     * reported at start instead of retrying silently forever. Once a reader has consumed, every error is
     * retried: the broker may be restarting.
     */
    static boolean isPermanent(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof AuthenticationFailureException || t instanceof PossibleAuthenticationFailureException) {
                return true;
            }
            if (t instanceof CertificateException) {
                return true; // TLS: untrusted certificate or host name mismatch.
            }
            if (t instanceof ShutdownSignalException) {
                Method reason = ((ShutdownSignalException) t).getReason();
                int code = -1;
                if (reason instanceof AMQP.Channel.Close) {
                    code = ((AMQP.Channel.Close) reason).getReplyCode();
                } else if (reason instanceof AMQP.Connection.Close) {
                    code = ((AMQP.Connection.Close) reason).getReplyCode();
                }
                // 403 ACCESS_REFUSED, 404 NOT_FOUND (queue), 530 NOT_ALLOWED (vhost).
                return code == 403 || code == 404 || code == 530;
            }
        }
        return false;
    }

    static String describe(Throwable e) {
        StringBuilder text = new StringBuilder();
        int depth = 0;
        for (Throwable t = e; t != null && depth < 5; t = t.getCause(), depth++) {
            if (text.length() > 0) {
                text.append(" <- ");
            }
            text.append(t.getClass().getSimpleName());
            if (t.getMessage() != null) {
                text.append(": ").append(t.getMessage());
            }
        }
        return text.toString();
    }

    private static ThreadFactory daemon(String name) {
        return runnable -> {
            Thread thread = new Thread(runnable, name);
            thread.setDaemon(true);
            return thread;
        };
    }

    private final class DeliveryConsumer extends DefaultConsumer {
        private final long generation;

        DeliveryConsumer(Channel channel, long generation) {
            super(channel);
            this.generation = generation;
        }

        @Override
        public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties, byte[] body) {
            try {
                listener.onDelivery(new AmqpDelivery(generation, envelope.getDeliveryTag(), envelope.getRoutingKey(), body));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public void handleCancel(String consumerTag) {
            // The broker cancelled us (queue deleted, or similar) while the channel stays open:
            // start over on a fresh connection.
            onLost(generation, "consumer " + consumerTag + " cancelled by the broker");
        }
    }
}
