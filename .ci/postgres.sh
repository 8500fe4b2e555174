#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests, on 127.0.0.1 with `trust` auth (for tests
# only: anyone on this machine may connect), and prints its URL on stdout, for
# EASYCACHING_TEST_POSTGRES:
#
#   export EASYCACHING_TEST_POSTGRES="$(.ci/postgres.sh)"
#
# The server also takes TLS, with a certificate for `localhost` signed by a throwaway root,
# $EASYCACHING_PG_DATA/root.crt, for the TLS tests (EASYCACHING_TEST_POSTGRES_CA); made with
# openssl, and skipped (the server plain) when there is no openssl. Its pg_hba.conf lets the
# role easycaching_tls_only (made and dropped by the test of sslmode=allow) in only over TLS.
#
# Idempotent: a server already answering on the port is reused; PostgreSQL is installed with
# apt-get only when no initdb is found. EASYCACHING_PG_PORT (54329) and EASYCACHING_PG_DATA
# (/tmp/easycaching-pg) choose where. Stop it with:
#   pg_ctl -D /tmp/easycaching-pg stop     (as the postgres user when run as root)
set -euo pipefail

port=${EASYCACHING_PG_PORT:-54329}
data=${EASYCACHING_PG_DATA:-/tmp/easycaching-pg}
url="postgres://postgres@127.0.0.1:${port}/postgres"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(find_bin)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres.sh: installing PostgreSQL (apt-get)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y postgresql >&2
    bin=$(find_bin)
fi

# Run the server as `postgres` when root (it refuses to run as root), else as ourselves.
as_owner=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    as_owner=(runuser -u postgres --)
    owner=postgres
fi

if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "postgres.sh: a server already answers on 127.0.0.1:${port}; using it" >&2
    echo "$url"
    exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    chown "$owner" "$data"
    chmod 700 "$data"
    "${as_owner[@]}" "$bin/initdb" -D "$data" -A trust -U postgres >&2
fi
# The TLS tests' role that the server lets in only over TLS (sslmode=allow must fall back to it).
if ! grep -q easycaching_tls_only "$data/pg_hba.conf"; then
    sed -i '1i hostnossl all easycaching_tls_only all reject' "$data/pg_hba.conf"
fi
tls=""
if command -v openssl >/dev/null; then
    if [ ! -f "$data/server.crt" ]; then
        (
            cd "$data"
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=easycaching test root" \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -keyout root.key -out root.crt 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
            printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > server.ext
            openssl x509 -req -in server.csr -CA root.crt -CAkey root.key -CAcreateserial -days 3650 \
                -extfile server.ext -out server.crt 2>/dev/null
            chmod 600 server.key root.key
            chown "$owner" server.key server.crt
        ) >&2
    fi
    tls="-c ssl=on -c ssl_cert_file=$data/server.crt -c ssl_key_file=$data/server.key"
else
    echo "postgres.sh: no openssl: the server takes no TLS, and the TLS tests are skipped" >&2
fi
"${as_owner[@]}" "$bin/pg_ctl" -D "$data" -l "$data.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 $tls" start >&2
echo "$url"
