package io.fleetsense.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The host lists of the job's amqp_host / cassandra_host (the same cases as tests/unit/test_host_list.py). */
class HostListTest {
    @Test
    void oneHostIsTheSingleNodeForm() {
        assertEquals(List.of("127.0.0.1"), HostList.parse("127.0.0.1", "hosts"));
        assertEquals(List.of("localhost"), HostList.parse("localhost", "hosts"));
    }

    @Test
    void aListKeepsItsOrderAndIgnoresSpacesAroundCommas() {
        assertEquals(List.of("10.77.0.11", "10.77.0.12", "rmq3"), HostList.parse("10.77.0.11, 10.77.0.12 ,rmq3", "hosts"));
    }

    @Test
    void badEntriesAreRefusedByName() {
        for (String bad : new String[] {"", " ", "a,,b", "a,", "10.0.0.256", "10.0.0", "h:5672", "-h", "a b", "a_b"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HostList.parse(bad, "the hosts"));
            assertTrue(e.getMessage().startsWith("the hosts"), e.getMessage());
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> HostList.parse("a,b,a", "h")).getMessage()
                .contains("twice"));
    }

    @Test
    void aRotationStartsAnywhereAndWrapsRound() {
        List<String> hosts = List.of("a", "b", "c");
        assertEquals(List.of("b", "c", "a"), HostList.rotated(hosts, 1));
        assertEquals(List.of("a", "b", "c"), HostList.rotated(hosts, 3));
        assertEquals(List.of("c", "a", "b"), HostList.rotated(hosts, -1));
    }
}
