package io.fleetsense.flink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.regex.Pattern;

/**
 * A comma-separated list of hosts ("10.77.0.11,10.77.0.12,rmq3"), each a host name or an IPv4 address: where the
 * AMQP source and the Cassandra sink connect on a cluster. One host is the single-node form. The same rules as the
 * job's settings (fleetsense.cloud.job_settings.host_list), so a list Python accepted is one Java accepts.
 */
public final class HostList {
    private static final Pattern IPV4 = Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}");
    // RFC 1123 labels: letters, digits and inner hyphens, at most 63 bytes each.
    private static final Pattern LABEL = Pattern.compile("[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?");

    private HostList() {}

    /** The hosts of {@code text} in their order; an IllegalArgumentException names the first bad one. */
    public static List<String> parse(String text, String what) {
        if (text == null || text.trim().isEmpty()) {
            throw new IllegalArgumentException(what + " must name at least one host");
        }
        List<String> hosts = new ArrayList<>();
        for (String part : text.split(",", -1)) {
            String host = part.trim();
            if (!isHost(host)) {
                throw new IllegalArgumentException(what + " '" + text + "': '" + host
                        + "' is not a host name or an IPv4 address (give hosts separated by commas, no ports)");
            }
            if (hosts.contains(host)) {
                throw new IllegalArgumentException(what + " '" + text + "' names " + host + " twice");
            }
            hosts.add(host);
        }
        return Collections.unmodifiableList(hosts);
    }

    static boolean isHost(String host) {
        if (IPV4.matcher(host).matches()) {
            for (String octet : host.split("\\.")) {
                if (Integer.parseInt(octet) > 255) {
                    return false;
                }
            }
            return true;
        }
        if (host.isEmpty() || host.length() > 253 || host.chars().allMatch(c -> c == '.' || Character.isDigit(c))) {
            return false; // "10.0.0" or "999.1.1.1" is a mistyped address, not a name
        }
        for (String label : host.split("\\.", -1)) {
            if (!LABEL.matcher(label).matches()) {
                return false;
            }
        }
        return true;
    }

    /** {@code items} starting at {@code first} (modulo its size), then wrapping round: a failover order. */
    public static <T> List<T> rotated(List<T> items, int first) {
        int n = items.size();
        List<T> order = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            order.add(items.get(Math.floorMod(first + i, n)));
        }
        return order;
    }
}
