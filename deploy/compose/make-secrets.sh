#!/bin/bash
# Creates every secret the compose stack reads that does not exist yet (mode 0600, one random value a file); an
# existing one is kept, so a second run changes nothing. `--self-signed-tls` also makes a CA and a broker
# certificate in tls/ for a trial; production brings its own (docs/deployment.md, TLS).
set -euo pipefail
cd "$(dirname "$0")"
umask 077
for name in erlang-cookie rabbitmq-admin-password flink-amqp-password \
    cassandra-operator-password cassandra-job-password cassandra-reader-password; do
    if [ ! -s "secrets/$name" ]; then
        # URL-safe: the values go into rabbitmq.conf and URLs without escaping.
        openssl rand -base64 48 | tr -d '\n=+/' | head -c 48 > "secrets/$name"
        echo "created secrets/$name"
    fi
done
if [ "${1:-}" = "--self-signed-tls" ] && [ ! -s tls/server-key.pem ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=fleetsense trial CA" \
        -keyout tls/ca-key.pem -out tls/ca.pem
    openssl req -newkey rsa:3072 -nodes -subj "/CN=mqtt.fleetsense.invalid" \
        -keyout tls/server-key.pem -out tls/server.csr
    openssl x509 -req -in tls/server.csr -CA tls/ca.pem -CAkey tls/ca-key.pem -CAcreateserial -days 825 \
        -extfile <(printf 'subjectAltName=DNS:mqtt.fleetsense.invalid,DNS:rmq1,DNS:rmq2,DNS:rmq3') \
        -out tls/server.pem
    chmod 0644 tls/ca.pem tls/server.pem
    echo "created a trial CA and broker certificate in tls/"
fi
