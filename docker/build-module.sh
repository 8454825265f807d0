#!/usr/bin/env bash
# The Dockerfile's build stage: the module against this image's own Debian
# nginx, the way "make build" builds it (and Debian builds its module
# packages): nginx-dev's source tree configured with nginx-dev's own flags
# (conf_flags) plus --with-compat, then only "make modules".  The result,
# with the migrations, their runner and the /docs assets when the build
# context has them, goes to /out for the runtime stage.
#
#   docker/build-module.sh SRC OUT
set -euo pipefail

src=$1
out=$2
work=$(mktemp -d)

cp -a /usr/share/nginx/src "$work/nginx"
cd "$work/nginx"
. ./conf_flags
./configure --with-compat "${NGX_CONF_FLAGS[@]}" \
    --add-dynamic-module="$src" --builddir=objs >configure.log
make -s -f objs/Makefile -j"$(nproc)" modules

mkdir -p "$out/modules" "$out/share/modelreg/sql" "$out/share/modelreg/conf"
install -m 0644 objs/ngx_http_modelreg_module.so "$out/modules/"
install -m 0644 "$src"/sql/[0-9][0-9][0-9]_*.sql "$out/share/modelreg/sql/"
install -m 0755 "$src/sql/migrate" "$out/share/modelreg/sql/"
install -m 0755 "$src/conf/geti-conf" "$out/share/modelreg/conf/"
install -m 0644 "$src/conf/modelreg_storage.conf" \
    "$out/share/modelreg/conf/"

# GET /docs's assets are "make deps"'s (npm; not fetched here: no npm in
# the image): copied when the context has build/swagger-ui, else /docs
# serves its page without them
if [ -f "$src/build/swagger-ui/.installed" ]; then
    mkdir -p "$out/share/modelreg/swagger-ui"
    cp -a "$src"/build/swagger-ui/. "$out/share/modelreg/swagger-ui/"
    rm -f "$out/share/modelreg/swagger-ui/.installed"
fi

# the runtime stage installs exactly this nginx (the module's ABI)
dpkg-query -W -f='${Version}\n' nginx-dev >"$out/nginx-version"
rm -rf "$work"
