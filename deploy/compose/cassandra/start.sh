#!/bin/bash
# Runs before the official image's entrypoint: logins on (the image's cassandra.yaml allows everyone, and the image
# has no variable for it). The bootstrap replaces the default superuser cassandra/cassandra with our own.
set -euo pipefail
sed -i -E 's/(org\.apache\.cassandra\.auth\.)?AllowAllAuthenticator/PasswordAuthenticator/; s/(org\.apache\.cassandra\.auth\.)?AllowAllAuthorizer/CassandraAuthorizer/' \
    /etc/cassandra/cassandra.yaml
grep -q PasswordAuthenticator /etc/cassandra/cassandra.yaml || { echo "authenticator not found in cassandra.yaml" >&2; exit 1; }
exec docker-entrypoint.sh cassandra -f
