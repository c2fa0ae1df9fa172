package io.fleetsense.flink.amqp;

import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.core.io.SimpleVersionedSerializer;

/**
 * Unbounded source that consumes one RabbitMQ queue with parallel competing consumers and emits each
 * message as an {@link AmqpEnvelope} (routing key + body).
 *
 * <p>Delivery guarantee with {@link AmqpAckMode#AFTER_CHECKPOINT}: at-least-once. A message is acked
 * only after the checkpoint covering it completed; anything else is redelivered by the broker.
 */
public final class AmqpSource
        implements Source<byte[], AmqpSplit, AmqpEnumeratorState>, ResultTypeQueryable<byte[]> {
    private static final long serialVersionUID = 1L;

    private final AmqpConnectionConfig config;

    AmqpSource(AmqpConnectionConfig config) {
        this.config = config;
    }

    public static AmqpSourceBuilder builder() {
        return new AmqpSourceBuilder();
    }

    public AmqpConnectionConfig config() {
        return config;
    }

    @Override
    public Boundedness getBoundedness() {
        return Boundedness.CONTINUOUS_UNBOUNDED;
    }

    @Override
    public SourceReader<byte[], AmqpSplit> createReader(SourceReaderContext readerContext) {
        return new AmqpSourceReader(config, readerContext);
    }

    @Override
    public SplitEnumerator<AmqpSplit, AmqpEnumeratorState> createEnumerator(
            SplitEnumeratorContext<AmqpSplit> enumContext) {
        return new AmqpSplitEnumerator(enumContext, AmqpEnumeratorState.empty());
    }

    @Override
    public SplitEnumerator<AmqpSplit, AmqpEnumeratorState> restoreEnumerator(
            SplitEnumeratorContext<AmqpSplit> enumContext, AmqpEnumeratorState checkpoint) {
        return new AmqpSplitEnumerator(enumContext, checkpoint);
    }

    @Override
    public SimpleVersionedSerializer<AmqpSplit> getSplitSerializer() {
        return new AmqpSplitSerializer();
    }

    @Override
    public SimpleVersionedSerializer<AmqpEnumeratorState> getEnumeratorCheckpointSerializer() {
        return new AmqpEnumeratorStateSerializer();
    }

    @Override
    public TypeInformation<byte[]> getProducedType() {
        return PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
    }

    @Override
    public String toString() {
        return "AmqpSource{" + config + "}";
    }
}
