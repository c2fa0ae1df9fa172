package io.fleetsense.flink.cassandra;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.net.InetSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The sink on a ring: every node a contact point, the local datacenter named or inferred. */
class CassandraContactPointsTest {
    private static CassandraSink.Builder builder(String hosts) {
        return CassandraSink.builder().setContact(hosts, 9042).addStatement("s", "INSERT INTO k.t (a) VALUES (?)", "LOCAL_QUORUM");
    }

    @Test
    void everyNodeOfTheListIsAContactPoint() {
        CassandraSink sink = builder("10.77.0.21,10.77.0.22,10.77.0.23").setLocalDatacenter("dc1").build();
        assertEquals(List.of(InetSocketAddress.createUnresolved("10.77.0.21", 9042),
                InetSocketAddress.createUnresolved("10.77.0.22", 9042),
                InetSocketAddress.createUnresolved("10.77.0.23", 9042)), CassandraSinkWriter.contactPoints(sink));
        assertEquals("dc1", sink.localDatacenter);
    }

    @Test
    void withoutADatacenterNameTheContactPointsOneIsUsed() {
        assertEquals("", builder("127.0.0.1").build().localDatacenter);
        assertEquals("", builder("127.0.0.1").setLocalDatacenter(" ").build().localDatacenter);
    }

    @Test
    void aBadListFailsTheBuildNotTheRunningJob() {
        assertThrows(IllegalArgumentException.class, () -> builder("10.77.0.21,,10.77.0.23").build());
        assertThrows(IllegalArgumentException.class, () -> builder("10.77.0.21:9042").build());
    }
}
