# modelreg: build, run, test.  Every target works on a fresh Debian 12
# machine as root: "deps" installs what is missing first.

SHELL      := /bin/bash
TOP        := $(CURDIR)
BUILD      := $(TOP)/build
NGX_SRC    := /usr/share/nginx/src
MODULE     := $(BUILD)/ngx_http_modelreg_module.so
VAR        ?= $(TOP)/var
PG_PORT    ?= 5544
STORAGE    ?= fs
HTTP_PORT  ?= 8111
S3_PORT    ?= 8112

# the module embeds openapi/openapi.json and the /docs page (config)
SOURCES    := $(wildcard ngx_modelreg/*.c ngx_modelreg/*.h) \
              openapi/openapi.json openapi/docs.html

DEB_PKGS   := nginx nginx-dev libpq-dev libjansson-dev libssl-dev \
              libcurl4-openssl-dev postgresql postgresql-contrib \
              libcmocka-dev gcc make curl perl valgrind python3 \
              swift swift-proxy swift-object swift-container swift-account \
              memcached ca-certificates wrk libjson-validator-perl \
              libcpanel-json-xs-perl libio-socket-ssl-perl openssl rsync jq
# make bench's peer (t/bench/peer): the Python service's stack, Debian's
DEB_PKGS   += python3-fastapi python3-uvicorn python3-asyncpg \
              python3-multipart python3-uvloop python3-httptools

# npm for swagger-ui-dist (below): Debian's, unless one is on PATH already
# (NodeSource's nodejs carries its own npm and conflicts with Debian's)
NODE_PKGS  := $(if $(shell command -v npm),,nodejs npm)

# t/39-docs-browser.t's: headless Chromium and its WebDriver server
# (make test installs them)
BROWSER_PKGS := chromium chromium-driver

# GET /docs's assets: openapi/package.json (swagger-ui-dist; also
# openapi-typescript, README's client example) installed into $(NPM) by
# npm ci, the files the page loads copied to $(SWAGGER_UI), which the
# shipped configurations serve at docs/.  Install scripts off: the only
# one is swagger-ui-dist's @scarf/scarf, which reports the install to
# scarf.sh (package.json's scarfSettings turns it off as well).
NPM        := $(BUILD)/npm
SWAGGER_UI := $(BUILD)/swagger-ui
SWAGGER_FILES := swagger-ui-bundle.js swagger-ui.css favicon-32x32.png \
              favicon-16x16.png LICENSE

# make deb's (README "Debian package"): Debian's module recipe and its
# checker; t/50-deb.t installs them too
DEB_BUILD_PKGS := dpkg-dev debhelper fakeroot lintian nginx-dev libpq-dev \
              libjansson-dev libssl-dev libcurl4-openssl-dev
DEB_OUT    := $(BUILD)/deb

# the fuzz targets' own (t/fuzz): installed by "make fuzz-deps" only
FUZZ_PKGS  := clang-16 libfuzzer-16-dev libclang-rt-16-dev
FUZZ_SECONDS ?= 60

.PHONY: all deps deb-deps browser-deps build run stop test unit bench soak \
        clean distclean fuzz-deps fuzz-build fuzz build-asan test-asan \
        openapi-lint image-deps image-base image deb deb-build-deps FORCE

all: build

# installs the Debian packages of $(1) that are missing
define deb_install
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps: deb-deps $(SWAGGER_UI)/.installed

deb-deps:
	$(call deb_install,$(DEB_PKGS) $(NODE_PKGS))

browser-deps:
	$(call deb_install,$(BROWSER_PKGS))

# a new directory by rename: nginx never serves half a copy
$(SWAGGER_UI)/.installed: openapi/package.json openapi/package-lock.json \
                          | deb-deps
	rm -rf $(NPM) $(SWAGGER_UI) $(SWAGGER_UI).tmp
	mkdir -p $(NPM) $(SWAGGER_UI).tmp
	cp $^ $(NPM)/
	cd $(NPM) && npm ci --ignore-scripts --no-audit --no-fund \
	    --loglevel=error
	cp $(addprefix $(NPM)/node_modules/swagger-ui-dist/,$(SWAGGER_FILES)) \
	    $(SWAGGER_UI).tmp/
	touch $(SWAGGER_UI).tmp/.installed
	mv $(SWAGGER_UI).tmp $(SWAGGER_UI)

deb-build-deps:
	$(call deb_install,$(DEB_BUILD_PKGS))

# libnginx-mod-http-modelreg_*.deb in build/deb, from a copy of the tree
# (what git tracks or would track, and build/swagger-ui, which the package
# ships for /docs): dpkg-buildpackage writes beside the source and dh
# leaves obj-*/ and debian/ products, all of them under build/deb here
deb: deb-build-deps $(SWAGGER_UI)/.installed
	rm -rf $(DEB_OUT)
	mkdir -p $(DEB_OUT)/src/build
	git ls-files -z -c -o --exclude-standard \
	    | tar -c --null -T - | tar -x -C $(DEB_OUT)/src
	cp -a $(SWAGGER_UI) $(DEB_OUT)/src/build/
	cd $(DEB_OUT)/src && nice -n 19 dpkg-buildpackage -b -us -uc \
	    >$(DEB_OUT)/build.log 2>&1 \
	    || { tail -n 40 $(DEB_OUT)/build.log; exit 1; }
	rm -rf $(DEB_OUT)/src
	set -o pipefail; lintian --info --fail-on error $(DEB_OUT)/*.deb \
	    | tee $(DEB_OUT)/lintian.log
	@ls $(DEB_OUT)/*.deb

fuzz-deps:
	$(call deb_install,$(FUZZ_PKGS))

build: deps $(MODULE)

# nginx's configure writes into its cwd: configure a copy of nginx-dev's
# tree once, then "make modules" rebuilds only what changed.
$(BUILD)/nginx/objs/Makefile: config
	rm -rf $(BUILD)/nginx
	mkdir -p $(BUILD)
	cp -a $(NGX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && . ./conf_flags && \
	    ./configure --with-compat "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(TOP) --builddir=objs >configure.log

$(MODULE): $(BUILD)/nginx/objs/Makefile $(SOURCES)
	$(MAKE) -s -C $(BUILD)/nginx -f objs/Makefile modules
	@# a new inode: running workers keep the old file mapped
	cp $(BUILD)/nginx/objs/ngx_http_modelreg_module.so $@.tmp
	mv -f $@.tmp $@

# another instance beside the first: VAR=dir HTTP_PORT= PG_PORT= S3_PORT=
run: build
	@STORAGE=$(STORAGE) MODELREG_VAR=$(VAR) HTTP_PORT=$(HTTP_PORT) \
	    PG_PORT=$(PG_PORT) S3_PORT=$(S3_PORT) bash conf/modelreg-ctl start

stop:
	@MODELREG_VAR=$(VAR) bash conf/modelreg-ctl stop

unit: build
	$(MAKE) -s -C t/unit BUILD=$(BUILD)

# the libFuzzer targets of t/fuzz, under ASan and UBSan, in build/fuzz
fuzz-build: deps fuzz-deps $(BUILD)/nginx/objs/Makefile
	$(MAKE) -s -C t/fuzz BUILD=$(BUILD)

# each target replays its seed corpus, then fuzzes for FUZZ_SECONDS
# (README "Reliability"); fails on any crash, leak or sanitizer report
fuzz: fuzz-build
	perl t/fuzz/run.pl --seconds $(FUZZ_SECONDS)

# the OpenAPI document's optional second lint: Redocly's CLI, from npm
# into the build tree (not committed); t/38-openapi.t runs it when it is
# there, after JSON::Validator's checks
REDOCLY_VERSION ?= 2.77.0
REDOCLY    := $(BUILD)/redocly/node_modules/.bin/redocly

openapi-lint: $(REDOCLY)
	prove t/38-openapi.t

$(REDOCLY):
	npm install --prefix $(BUILD)/redocly --no-audit --no-fund \
	    --loglevel=error @redocly/cli@$(REDOCLY_VERSION)

# every test; the models tests run again on S3 (t/s3/: a local Swift);
# t/37-fuzz.t runs each fuzz target briefly; t/50-deb.t builds the Debian
# package (make deb) and installs it into the stock nginx; t/51-docker.t
# builds the image (make image) and runs it with podman
test: build unit fuzz-build browser-deps deb-build-deps image-deps
	prove -r t/

# issue 6's scenarios against their baselines; prints a table and writes
# t/bench/results.json (BENCH_ARGS: --rounds N --seconds S --only RE)
bench: build
	perl t/bench/bench.pl $(BENCH_ARGS)

# issue 12's soak, not in CI: SOAK_SECONDS (600) of mixed load at
# SOAK_CONNECTIONS (256) from wrk; prints RSS, errors and throughput every
# 10 s, then descriptors and connections before and after (t/soak/)
soak: build
	perl t/soak/soak.pl

# ---- the suite under AddressSanitizer + UndefinedBehaviorSanitizer --------
# nginx itself, from Debian's source package (its patches applied, its
# configure flags), built with the sanitizers and NGX_DEBUG_PALLOC (every
# pool allocation its own malloc, so ASan sees its bounds and its free),
# and the module against that tree; all of it under build/asan/.  gcc:
# the compiler Debian builds nginx with and the normal build uses (its
# libasan8/libubsan1 come with it), so the same -Werror warnings hold.
ASAN       := $(BUILD)/asan
ASAN_NGX   := $(ASAN)/nginx
ASAN_BIN   := $(ASAN)/sbin/nginx
ASAN_MOD   := $(ASAN)/ngx_http_modelreg_module.so
ASAN_CC    := -fsanitize=address,undefined -fno-omit-frame-pointer -g \
              -DNGX_DEBUG_PALLOC=1
# libcrypt by name: libasan's crypt() interceptor satisfies configure's
# check, so nginx would link without it and the interceptor call a NULL
# crypt() (auth_basic with a "$5$" hash: t/52's SEGV in ngx_libc_crypt)
ASAN_LD    := -fsanitize=address,undefined -Wl,--no-as-needed -lcrypt
ASAN_PKGS  := dpkg-dev libasan8 libubsan1 nginx-dev
DEB_SRC    := /etc/apt/sources.list.d/modelreg-src.sources
# what test-asan runs (CI may run a part: ASAN_TESTS="t/0*.t"): every
# file that runs the module, so not the unit tests (valgrind), the layer
# and document lints, the fuzzers (built with the sanitizers already), nor
# the package and image, which build their own module
ASAN_SKIP  := t/00-unit.t t/36-layers.t t/37-fuzz.t t/38-openapi.t \
              t/50-deb.t t/51-docker.t
ASAN_TESTS ?= $(filter-out $(ASAN_SKIP),$(sort $(wildcard t/*.t))) t/s3/
# Reports go to files (workers have no terminal), one directory per test
# file: the harness fails the file that has one.  The options:
# - abort_on_error: ASan stops at its first report (memory is corrupt
#   after it) by abort(), so the master logs "exited on signal 6" too;
#   UBSan (halt_on_error=0) reports with a stack and goes on (the state is
#   sound), so one run shows every report;
# - detect_leaks: LeakSanitizer as each process exits (workers and master
#   destroy their cycle's pool: what is left unreachable is a leak);
#   .ci/lsan.supp may suppress nginx's and libraries' own, never ours;
# - detect_odr_violation=0: nginx's dynamic-module ABI defines ngx_modules
#   and ngx_module_names in the binary and again in every module (dlsym
#   reads the module's); a second definition among our files fails the
#   link anyway;
# - intercept_tls_get_addr=0: gcc 12's runtime takes a dynamic TLS block
#   that happens to start at 16 (mod 4096) for a glibc 2.19 header, and
#   LeakSanitizer dies scanning the range it reads there
#   (google/sanitizers#1322; seen here in respawned workers); ld.so's
#   allocations, those blocks among them, stay roots of the leak scan;
# - strict_string_checks: a libc string function's argument must be a
#   whole NUL-terminated string (an ngx_str_t is not);
# - detect_stack_use_after_return: a pointer to a returned frame.
ASAN_OPTS  := abort_on_error=1 detect_leaks=1 detect_odr_violation=0 \
              intercept_tls_get_addr=0 detect_stack_use_after_return=1 \
              strict_string_checks=1
UBSAN_OPTS := print_stacktrace=1 halt_on_error=0
empty      :=
colons      = $(subst $(empty) $(empty),:,$(strip $(1)))
LOG_PATH   := log_path=$(ASAN)/reports/sanitizer
ASAN_ENV   := MODELREG_NGINX=$(ASAN_BIN) MODELREG_MODULE=$(ASAN_MOD) \
              MODELREG_SANITIZER_REPORTS=$(ASAN)/reports \
              ASAN_OPTIONS=$(LOG_PATH):$(call colons,$(ASAN_OPTS)) \
              UBSAN_OPTIONS=$(LOG_PATH):$(call colons,$(UBSAN_OPTS)) \
              LSAN_OPTIONS=suppressions=$(TOP)/.ci/lsan.supp

# apt-get source: deb-src added when apt has none for nginx; the newest
# version listed whose files download (the security pool may list a
# version whose .dsc is gone), then older ones
$(ASAN_NGX)/configure:
	@$(MAKE) -s deps DEB_PKGS="$(ASAN_PKGS)"
	@if [ -z "$$(apt-cache showsrc nginx 2>/dev/null)" ]; then \
	    echo "adding Debian's deb-src: $(DEB_SRC)"; \
	    install -m 0644 .ci/debian-src.sources $(DEB_SRC); \
	    apt-get update -qq; \
	fi
	rm -rf $(ASAN)/src $(ASAN_NGX)
	mkdir -p $(ASAN)/src
	cd $(ASAN)/src && \
	for v in $$(apt-cache showsrc nginx | sed -n 's/^Version: //p' \
	            | sort -rVu); do \
	    if apt-get source -qq --only-source nginx=$$v >fetch-$$v.log 2>&1; \
	    then echo "nginx source $$v"; echo $$v >version; break; fi; \
	    echo "nginx source $$v does not download; trying an older one"; \
	    find . -mindepth 1 -maxdepth 1 ! -name 'fetch-*' \
	        -exec rm -rf {} +; \
	done; \
	test -s version && mv nginx-*/ $(ASAN_NGX)

# the flags as a file that changes only when they do (not with Makefile)
$(ASAN)/flags: FORCE
	@mkdir -p $(ASAN)
	@echo '$(ASAN_CC) | $(ASAN_LD)' | cmp -s - $@ \
	    || echo '$(ASAN_CC) | $(ASAN_LD)' >$@

$(ASAN_NGX)/objs/Makefile: $(ASAN_NGX)/configure config $(ASAN)/flags
	cd $(ASAN_NGX) && . $(NGX_SRC)/conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(ASAN_CC)" \
	        --with-ld-opt="$(ASAN_LD)" --add-dynamic-module=$(TOP) \
	        >configure.log

$(ASAN_MOD): $(ASAN_NGX)/objs/Makefile $(SOURCES)
	$(MAKE) -s -C $(ASAN_NGX) -f objs/Makefile binary modules
	mkdir -p $(ASAN)/sbin
	cp $(ASAN_NGX)/objs/nginx $(ASAN_BIN).tmp
	mv -f $(ASAN_BIN).tmp $(ASAN_BIN)
	cp $(ASAN_NGX)/objs/ngx_http_modelreg_module.so $@.tmp
	mv -f $@.tmp $@

build-asan: $(ASAN_MOD)

# every test against that nginx and module; any report fails the run
test-asan: build unit build-asan
	rm -rf $(ASAN)/reports
	mkdir -p $(ASAN)/reports
	chmod 1777 $(ASAN)/reports
	@start=$$(date +%s); \
	$(ASAN_ENV) prove --timer -r $(ASAN_TESTS); rc=$$?; \
	echo "test-asan: $$(( $$(date +%s) - start )) s," \
	     "load $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	reports=$$(find $(ASAN)/reports -type f | sort); \
	if [ -n "$$reports" ]; then \
	    for f in $$reports; do echo "==== $$f"; cat $$f; done; \
	    echo "test-asan: $$(echo $$reports | wc -w) sanitizer report(s)"; \
	    exit 1; \
	fi; \
	exit $$rc

# ---- the container image: docker/ (README "Docker and compose") -------
# No registry is needed: the bookworm base is made here by mmdebstrap from
# Debian's mirror and imported as $(IMAGE_BASE); buildah builds
# docker/Dockerfile on it (--format docker: HEALTHCHECK is not in OCI's
# format; chroot isolation: no OCI runtime or cgroups needed to build).
# runc: crun refuses this machine's hybrid cgroups (t/51-docker.t).
# docker-compose: "config" checks docker/compose.yaml (podman-compose
# 1.0.3 has no "config"); without its Recommends (docker.io, a daemon).
IMAGE_PKGS := buildah podman runc mmdebstrap podman-compose
IMAGE      ?= localhost/modelreg:latest
IMAGE_BASE ?= localhost/bookworm:latest
DEBIAN_MIRROR ?= http://deb.debian.org
IMAGE_ISOLATION ?= chroot

image-deps:
	$(call deb_install,$(IMAGE_PKGS))
	@dpkg-query -W -f='$${Status}\n' docker-compose 2>/dev/null \
	    | grep -q 'install ok installed' || { \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends docker-compose \
	        >/dev/null; }

image-base: image-deps
	@podman image exists $(IMAGE_BASE) || { \
	    set -e; mkdir -p $(BUILD); rm -f $(BUILD)/bookworm.tar; \
	    nice mmdebstrap --variant=minbase --mode=root --format=tar \
	        --quiet bookworm $(BUILD)/bookworm.tar \
	        "deb $(DEBIAN_MIRROR)/debian bookworm main" \
	        "deb $(DEBIAN_MIRROR)/debian bookworm-updates main" \
	        "deb $(DEBIAN_MIRROR)/debian-security bookworm-security main"; \
	    podman import --quiet --change 'CMD ["/bin/bash"]' \
	        $(BUILD)/bookworm.tar $(IMAGE_BASE); \
	    rm -f $(BUILD)/bookworm.tar; }

# where a registry is reachable: make image IMAGE_BASE=docker.io/debian:bookworm
image: image-deps $(if $(filter localhost/%,$(IMAGE_BASE)),image-base)
	nice buildah bud --quiet --isolation $(IMAGE_ISOLATION) --format docker \
	    --layers -f docker/Dockerfile --build-arg BASE=$(IMAGE_BASE) \
	    -t $(IMAGE) .

clean:
	-@MODELREG_VAR=$(VAR) bash conf/modelreg-ctl stop
	rm -rf $(VAR)

distclean: clean
	rm -rf $(BUILD)
