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

SOURCES    := $(wildcard ngx_modelreg/*.c ngx_modelreg/*.h)

DEB_PKGS   := nginx nginx-dev libpq-dev libjansson-dev libssl-dev \
              libcurl4-openssl-dev postgresql postgresql-contrib \
              libcmocka-dev gcc make curl perl valgrind python3 \
              swift swift-proxy swift-object swift-container swift-account \
              memcached ca-certificates wrk

# the fuzz targets' own (t/fuzz): installed by "make fuzz-deps" only
FUZZ_PKGS  := clang-16 libfuzzer-16-dev libclang-rt-16-dev
FUZZ_SECONDS ?= 60

.PHONY: all deps build run stop test unit bench soak clean distclean \
        fuzz-deps fuzz-build fuzz

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

deps:
	$(call deb_install,$(DEB_PKGS))

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

# every test; the models tests run again on S3 (t/s3/: a local Swift);
# t/37-fuzz.t runs each fuzz target briefly
test: build unit fuzz-build
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

clean:
	-@MODELREG_VAR=$(VAR) bash conf/modelreg-ctl stop
	rm -rf $(VAR)

distclean: clean
	rm -rf $(BUILD)
