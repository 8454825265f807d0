#!/usr/bin/env bash
# The image's entrypoint: writes nginx.conf from the environment, waits for
# PostgreSQL, runs the migrations (sql/migrate: an advisory lock makes it
# safe from every replica at once), then runs nginx in the foreground.
#
#   (no argument)  migrate, then nginx
#   migrate        migrate only (a one-shot job before a rolling upgrade)
#   conf           print the nginx.conf the environment makes, and exit
#   -t, -T, ...    nginx with these options (after writing the conf)
#   anything else  run as a command
#
# Environment (defaults in brackets; *_FILE: a file, e.g. a secret under
# /run/secrets, whose first line is the value; nothing secret is ever put
# in nginx.conf or on a command line):
#   MODELREG_DATABASE         libpq conninfo
#                             [host=postgres port=5432 dbname=modelreg
#                              user=modelreg]
#   MODELREG_DATABASE_PASSWORD_FILE   the role's password (a 0600 passfile
#                             is made from it)
#   MODELREG_DATABASE_POOL [8], _QUEUE [256], _TIMEOUT [5s]
#   MODELREG_DATABASE_WAIT    seconds to wait for PostgreSQL at start [60]
#   MODELREG_MIGRATE          on|off [on]
#   MODELREG_STORAGE          fs|s3 [fs]
#   MODELREG_FS_DIR           [/var/lib/modelreg/objects]
#   MODELREG_S3_ENDPOINT, MODELREG_S3_BUCKET [models],
#   MODELREG_S3_REGION [us-east-1], MODELREG_S3_PATH_STYLE [on],
#   MODELREG_S3_PART_SIZE [64m],
#   MODELREG_S3_ACCESS_KEY_FILE [/run/secrets/s3_access_key],
#   MODELREG_S3_SECRET_KEY_FILE [/run/secrets/s3_secret_key]
#   MODELREG_LISTEN [8080], MODELREG_WORKERS [auto],
#   MODELREG_LOG_LEVEL [notice], MODELREG_METRICS_ALLOW [127.0.0.1]
#   MODELREG_ACTOR            modelreg_actor's value (e.g.
#                             $http_x_authenticated_user behind a proxy
#                             that sets it) [unset: "-"]
#   GETI_HOST, GETI_TOKEN or GETI_TOKEN_FILE, GETI_ORGANIZATION_ID,
#   GETI_WORKSPACE_ID, GETI_SERVER_API_VERSION, GETI_SERVER_SSL_VERIFY,
#   GETI_SYNC_INTERVAL        as the Python service's (conf/geti-conf)
# Files mounted in /etc/modelreg/http.d/*.conf and server.d/*.conf are
# included in http{} and in the server{}.
set -euo pipefail

share=/usr/share/modelreg
run=${MODELREG_RUN:-/run/modelreg}
conf=$run/nginx.conf

die() { echo "modelreg-entrypoint: $*" >&2; exit 1; }

# the first line of file $1 (secrets: never echoed)
first_line() {
    [ -r "$1" ] || die "cannot read $1"
    local v
    IFS= read -r v <"$1" || [ -n "$v" ] || die "$1 is empty"
    printf '%s' "$v"
}

# a value inside an nginx double-quoted string
nginx_quote() {
    local v=${1//\\/\\\\}
    printf '"%s"' "${v//\"/\\\"}"
}

is_number() { case $1 in ''|*[!0-9]*) return 1 ;; esac; }

mkdir -p "$run/tmp" || die "$run is not writable by $(id -un)"

# ---- the database ---------------------------------------------------
conninfo=${MODELREG_DATABASE:-host=postgres port=5432 dbname=modelreg user=modelreg}

if [ -n "${MODELREG_DATABASE_PASSWORD_FILE:-}" ]; then
    pw=$(first_line "$MODELREG_DATABASE_PASSWORD_FILE")
    pw=${pw//\\/\\\\}
    ( umask 077; printf '*:*:*:*:%s\n' "${pw//:/\\:}" >"$run/pgpass" )
    unset pw
    conninfo="$conninfo passfile=$run/pgpass"
fi

# libpq resolves a host name synchronously when a worker connects (README
# "Configuration"): a name is resolved once here, into hostaddr=
dbhost=
if [[ " $conninfo" =~ [[:space:]]host=([A-Za-z0-9._-]+)([[:space:]]|$) ]]; then
    dbhost=${BASH_REMATCH[1]}
fi
if [ -n "$dbhost" ] && [[ ! $dbhost =~ ^[0-9.]+$ ]] \
   && [[ ! " $conninfo" =~ [[:space:]]hostaddr= ]]; then
    wait_s=${MODELREG_DATABASE_WAIT:-60}
    is_number "$wait_s" || die "MODELREG_DATABASE_WAIT is not a number"
    addr=
    for ((i = 0; i <= wait_s; i++)); do
        addr=$(getent ahostsv4 "$dbhost" | awk '{print $1; exit}')
        [ -n "$addr" ] && break
        sleep 1
    done
    [ -n "$addr" ] || die "cannot resolve $dbhost"
    conninfo="$conninfo hostaddr=$addr"
fi

# ---- the store --------------------------------------------------------
storage_line=
storage_include=
case ${MODELREG_STORAGE:-fs} in
    fs)
        dir=${MODELREG_FS_DIR:-/var/lib/modelreg/objects}
        mkdir -p "$dir" || die "$dir is not writable by $(id -un)"
        storage_line="modelreg_storage  fs $(nginx_quote "$dir");"
        ;;
    s3)
        [ -n "${MODELREG_S3_ENDPOINT:-}" ] || die "MODELREG_S3_ENDPOINT is unset"
        ak=${MODELREG_S3_ACCESS_KEY_FILE:-/run/secrets/s3_access_key}
        sk=${MODELREG_S3_SECRET_KEY_FILE:-/run/secrets/s3_secret_key}
        [ -r "$ak" ] || die "cannot read the S3 access key file $ak"
        [ -r "$sk" ] || die "cannot read the S3 secret key file $sk"
        mkdir -p /var/lib/modelreg/spool \
            || die "/var/lib/modelreg is not writable by $(id -un)"
        storage_line="modelreg_storage  s3
        $(nginx_quote "endpoint=$MODELREG_S3_ENDPOINT")
        $(nginx_quote "bucket=${MODELREG_S3_BUCKET:-models}")
        $(nginx_quote "region=${MODELREG_S3_REGION:-us-east-1}")
        $(nginx_quote "path_style=${MODELREG_S3_PATH_STYLE:-on}")
        $(nginx_quote "part_size=${MODELREG_S3_PART_SIZE:-64m}")
        $(nginx_quote "access_key_file=$ak")
        $(nginx_quote "secret_key_file=$sk")
        spool=/var/lib/modelreg/spool;"
        storage_include="include  $share/conf/modelreg_storage.conf;"
        ;;
    *)  die "MODELREG_STORAGE is fs or s3, not \"$MODELREG_STORAGE\"" ;;
esac

# the store's URL is proxied by variable: nginx resolves its host name at
# run time, with the container's resolver
resolver=
ns=$(awk '$1 == "nameserver" {print $2; exit}' /etc/resolv.conf 2>/dev/null \
     || true)
if [ -n "$ns" ]; then
    case $ns in *:*) ns="[${ns%%%*}]" ;; esac
    resolver="resolver  $ns valid=30s;"
fi

# ---- Geti: the GETI_* variables, as "make run" reads them --------------
if [ -n "${GETI_HOST:-}" ] && [ -n "${GETI_TOKEN_FILE:-}" ] \
   && [ -z "${GETI_TOKEN:-}" ]; then
    GETI_TOKEN=$(first_line "$GETI_TOKEN_FILE")
    export GETI_TOKEN
fi
"$share/conf/geti-conf" "$run/geti_token" >"$run/geti.conf"
unset GETI_TOKEN

listen=${MODELREG_LISTEN:-8080}
is_number "$listen" || die "MODELREG_LISTEN is not a port number"
actor=
[ -n "${MODELREG_ACTOR:-}" ] \
    && actor="modelreg_actor  $(nginx_quote "$MODELREG_ACTOR");"

cat >"$conf.tmp" <<CONF
# written by modelreg-entrypoint from the environment at $(date -u +%FT%TZ)
load_module  /usr/lib/nginx/modules/ngx_http_modelreg_module.so;

worker_processes  ${MODELREG_WORKERS:-auto};
pid               $run/nginx.pid;
error_log         stderr ${MODELREG_LOG_LEVEL:-notice};

events {
    worker_connections  4096;
}

http {
    access_log  /dev/stdout;
    sendfile    on;
    server_tokens  off;

    client_body_temp_path  $run/tmp/body;
    proxy_temp_path        $run/tmp/proxy;
    fastcgi_temp_path      $run/tmp/fastcgi;
    uwsgi_temp_path        $run/tmp/uwsgi;
    scgi_temp_path         $run/tmp/scgi;

    $resolver

    modelreg_database  $(nginx_quote "$conninfo")
                       pool=${MODELREG_DATABASE_POOL:-8}
                       queue=${MODELREG_DATABASE_QUEUE:-256}
                       timeout=${MODELREG_DATABASE_TIMEOUT:-5s};

    $storage_line

    modelreg_cache  16m;
    $actor

    include  $run/geti.conf;
    include  /etc/modelreg/http.d/*.conf;

    server {
        listen  $listen;

        location / {
            modelreg;
            client_max_body_size  0;
        }

        location = /metrics {
            modelreg;
            allow  ${MODELREG_METRICS_ALLOW:-127.0.0.1};
            deny   all;
        }

        location /docs/ {
            alias  $share/swagger-ui/;
            types  { text/css css; application/javascript js; image/png png; }
        }

        $storage_include
        include  /etc/modelreg/server.d/*.conf;
    }
}
CONF
mv -f "$conf.tmp" "$conf"

migrate() {
    local wait_s=${MODELREG_DATABASE_WAIT:-60} i
    is_number "$wait_s" || die "MODELREG_DATABASE_WAIT is not a number"
    for ((i = 0; ; i++)); do
        pg_isready -q -d "$conninfo" && break
        [ "$i" -ge "$wait_s" ] && die "PostgreSQL not ready after ${wait_s}s"
        sleep 1
    done
    "$share/sql/migrate" "$conninfo"
}

nginx=(nginx -p "$run/" -c "$conf" -e stderr)

case ${1:-} in
    '')
        case ${MODELREG_MIGRATE:-on} in
            on|true|1|yes) migrate ;;
        esac
        exec "${nginx[@]}" -g 'daemon off;'
        ;;
    migrate) migrate ;;
    conf)    cat "$conf" ;;
    -*)      exec "${nginx[@]}" "$@" ;;
    *)       exec "$@" ;;
esac
