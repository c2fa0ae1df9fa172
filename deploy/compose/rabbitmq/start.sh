#!/bin/bash
# Runs as root before the official image's entrypoint: puts the secrets where RabbitMQ reads them, owned by the
# rabbitmq user (a cookie readable by others is refused), then hands over to the image's own start.
set -euo pipefail
secrets=${FLEETSENSE_SECRETS_DIR:-/run/secrets}
install -o rabbitmq -g rabbitmq -m 0400 "$secrets/erlang-cookie" /var/lib/rabbitmq/.erlang.cookie
install -d -o rabbitmq -g rabbitmq -m 0700 /var/lib/rabbitmq/tls
install -o rabbitmq -g rabbitmq -m 0400 "$secrets/rabbitmq-tls-key" /var/lib/rabbitmq/tls/server-key.pem
# With a default user the broker never creates guest on its first boot; only the first node of a new cluster uses it.
umask 077
printf 'default_user = %s\ndefault_pass = %s\ndefault_user_tags.administrator = true\n' \
    "$FLEETSENSE_RABBITMQ_ADMIN_USER" "$(cat "$secrets/rabbitmq-admin-password")" \
    > /etc/rabbitmq/conf.d/90-admin.conf
chown rabbitmq:rabbitmq /etc/rabbitmq/conf.d/90-admin.conf
exec docker-entrypoint.sh rabbitmq-server
