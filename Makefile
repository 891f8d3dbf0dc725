# mqoff — plain Makefile. `make` builds, `make test` installs deps and runs every test,
# `make asan` runs the unit tests under ASan+UBSan, `make fuzz` builds libFuzzer targets.

CC       ?= gcc
CLANG    ?= clang
PKG_CONFIG ?= pkg-config
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS += -Isrc -D_GNU_SOURCE
XCFLAGS   = -std=c11 $(WARN) $(CFLAGS) $(CPPFLAGS)
LIBS     := $(shell $(PKG_CONFIG) --libs liburing 2>/dev/null || echo -luring)
# ctl/: cJSON (control protocol, mqoffctl) and libmicrohttpd (metrics endpoint)
CTL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null || echo -I/usr/include/cjson)
CTL_LIBS   := $(shell $(PKG_CONFIG) --libs libcjson libmicrohttpd 2>/dev/null || echo -lcjson -lmicrohttpd)
CPPFLAGS += $(CTL_CFLAGS)
LIBS     += $(CTL_LIBS)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

# Packet I/O backends built when pkg-config finds their Debian packages (scripts/deps.sh
# installs them): DPDK (dpdk-dev) and AF_XDP (libxdp-dev, libbpf-dev). AF_PACKET is always in.
# `make NO_DPDK=1 NO_AFXDP=1` builds without them.
DPDK_OK  := $(if $(NO_DPDK),,$(shell $(PKG_CONFIG) --exists libdpdk 2>/dev/null && echo 1))
AFXDP_OK := $(if $(NO_AFXDP),,$(shell $(PKG_CONFIG) --exists libxdp libbpf 2>/dev/null && echo 1))
PKTIO_OPT = src/pktio/dpdk.c src/pktio/afxdp.c src/pktio/xdp_prog.c
PKTIO_ON  = $(if $(DPDK_OK),src/pktio/dpdk.c) $(if $(AFXDP_OK),src/pktio/afxdp.c src/pktio/xdp_prog.c)
ifeq ($(DPDK_OK),1)
# DPDK's headers as system headers: their own warnings are not ours
DPDK_CFLAGS := $(subst -I,-isystem ,$(shell $(PKG_CONFIG) --cflags libdpdk))
LIBS     += $(shell $(PKG_CONFIG) --libs libdpdk)
endif
ifeq ($(AFXDP_OK),1)
AFXDP_CFLAGS := $(shell $(PKG_CONFIG) --cflags libxdp libbpf)
LIBS     += $(shell $(PKG_CONFIG) --libs libxdp libbpf)
endif

# lwIP (liblwip-dev), proxy mode's --stack lwip: its headers as system headers (their own
# warnings are not ours), only for the files that use it.
LWIP_CFLAGS := $(subst -I,-isystem ,$(shell $(PKG_CONFIG) --cflags lwip 2>/dev/null || echo -I/usr/include/lwip))
LIBS     += $(shell $(PKG_CONFIG) --libs lwip 2>/dev/null || echo -llwip)
LWIP_SRCS = src/stack/lwip.c src/modes/proxy_lwip.c

B        ?= build
LIB_DIRS ?= src/core src/topic src/mqtt src/acl src/conf src/engine src/ctl src/tcp src/net src/modes src/l2 src/pktio src/plugin src/chan src/stack
# the plugin's glue to the broker (src/plugin/plugin.c) is only in mqoff_mosquitto.so
LIB_SRCS  = $(filter-out src/plugin/plugin.c $(PKTIO_OPT),$(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))) $(PKTIO_ON)
# the libFuzzer builds compile the library from source, without the optional backends
FUZZ_LIB_SRCS = $(filter-out $(PKTIO_OPT) $(LWIP_SRCS),$(LIB_SRCS))
LIB_OBJS  = $(LIB_SRCS:%.c=$(B)/%.o)
TEST_SRCS = $(sort $(wildcard tests/unit/*/test_*.c))
TEST_BINS = $(TEST_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS = $(sort $(wildcard fuzz/*/fuzz_*.c))
FUZZ_REPLAY = $(FUZZ_SRCS:fuzz/%.c=$(B)/fuzz-replay/%)
FUZZ_BINS = $(FUZZ_SRCS:fuzz/%.c=build-fuzz/%)
BENCH_SRCS = $(sort $(wildcard bench/*.c))
BENCH_BINS = $(BENCH_SRCS:bench/%.c=$(B)/bench/%)
BENCH_TOOL_SRCS = $(sort $(wildcard tools/bench/*.c))

BIN = $(B)/mqoff

SHIM = $(B)/libmqoff-intercept.so

.PHONY: install install-bins deb

.PHONY: FORCE all lib bin shim tests asan asan-build fuzz fuzz-replay bench-bins bench-tool bridge-tool mosqconf-tool plugin ctl-tool test unit demo bench deps clean

all: lib bin shim tests fuzz-replay bench-bins bench-tool bridge-tool mosqconf-tool plugin ctl-tool

bin: $(BIN) $(B)/mqoff-otherversion

$(BIN): src/main.c $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $< $(B)/libmqoff.a $(LIBS) $(LDFLAGS) -o $@

# mqoff speaking another takeover protocol version, for tests/lab/test_restart.sh (a takeover
# between versions is refused): its own takeover.c replaces the library's
$(B)/mqoff-otherversion: src/main.c src/net/takeover.c $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -DMQO_TKO_PROTO=999 src/main.c src/net/takeover.c $(B)/libmqoff.a $(LIBS) $(LDFLAGS) -o $@

lib: $(B)/libmqoff.a

# libmqoff-intercept.so, the LD_PRELOAD shim the broker runs with in intercept mode: the shim and
# the channel codec, compiled on their own as position-independent code (nothing of libmqoff.a,
# which holds no shim: its bind()/accept() would replace libc's in every program linked with it).
# Only the intercepted calls are exported.
SHIM_SRCS = src/preload/shim.c src/chan/chan.c src/chan/chan_io.c
shim: $(SHIM)
$(SHIM): $(SHIM_SRCS) src/chan/chan.h
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -fPIC -shared -fvisibility=hidden -Wl,-z,defs $(SHIM_SRCS) -ldl -pthread -o $@

$(B)/libmqoff.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -MMD -MP -c $< -o $@

$(B)/src/pktio/dpdk.o: XCFLAGS += $(DPDK_CFLAGS)
$(LWIP_SRCS:%.c=$(B)/%.o): XCFLAGS += $(LWIP_CFLAGS)
$(B)/src/pktio/afxdp.o $(B)/src/pktio/xdp_prog.o: XCFLAGS += $(AFXDP_CFLAGS)
# the pktio tests test what the build has
$(B)/tests/pktio/%: XCFLAGS += $(if $(DPDK_OK),-DMQO_HAVE_DPDK) $(if $(AFXDP_OK),-DMQO_HAVE_AFXDP $(AFXDP_CFLAGS))
$(B)/src/pktio/pktio.o: XCFLAGS += $(if $(DPDK_OK),-DMQO_HAVE_DPDK) $(if $(AFXDP_OK),-DMQO_HAVE_AFXDP)
# a backend that appears or goes (packages installed) rebuilds the dispatcher
$(B)/src/pktio/pktio.o: $(B)/pktio-backends
$(B)/pktio-backends: FORCE
	@mkdir -p $(@D)
	@echo "$(DPDK_OK) $(AFXDP_OK)" | cmp -s - $@ || echo "$(DPDK_OK) $(AFXDP_OK)" > $@
FORCE:

# Test helpers: tests/unit/<dir>/harness*.c and helper*.c are linked into that dir's tests.
helpers_of = $(wildcard $(1)harness*.c $(1)helper*.c)

.SECONDEXPANSION:
$(B)/tests/%: tests/unit/%.c $$(call helpers_of,$$(dir tests/unit/%)) $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $(CMOCKA_CFLAGS) -I$(dir $<) $< $(call helpers_of,$(dir $<)) $(B)/libmqoff.a $(LIBS) $(CMOCKA_LIBS) -o $@

# The shim's test links libmqoff-intercept.so: its bind(), accept(), ... replace libc's in the
# test program, as LD_PRELOAD makes them in the broker.
$(B)/tests/preload/test_shim: tests/unit/preload/test_shim.c $(SHIM) $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $(CMOCKA_CFLAGS) $< $(B)/libmqoff.a $(SHIM) -Wl,-rpath,$(abspath $(B)) $(LIBS) $(CMOCKA_LIBS) -pthread -o $@

# Fuzz targets may use the helpers of the unit-test dir of the same name.
$(B)/fuzz-replay/%: fuzz/%.c fuzz/replay_main.c $$(call helpers_of,tests/unit/$$(dir $$*)) $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -Itests/unit/$(notdir $(@D)) $< fuzz/replay_main.c $(call helpers_of,tests/unit/$(notdir $(@D))/) $(B)/libmqoff.a $(LIBS) -o $@

$(B)/bench/%: bench/%.c $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $< $(B)/libmqoff.a $(LIBS) -lm -o $@

tests: $(TEST_BINS)
fuzz-replay: $(FUZZ_REPLAY)
bench-bins: $(BENCH_BINS)

# mqoff-bench, the load generator and latency meter (tools/bench).
bench-tool: $(B)/mqoff-bench
$(B)/mqoff-bench: $(BENCH_TOOL_SRCS) $(wildcard tools/bench/*.h) $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -Itools/bench $(BENCH_TOOL_SRCS) $(B)/libmqoff.a $(LIBS) -lm -o $@

# mqoff-bridge, the two-port null forwarder (pktio + l2 + impair; tools/bridge).
bridge-tool: $(B)/mqoff-bridge
$(B)/mqoff-bridge: tools/bridge/bridge.c $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $< $(B)/libmqoff.a $(LIBS) -o $@

# mqoff-mosqconf: reads a mosquitto.conf as the broker does and prints mqoff's policy (conf/).
mosqconf-tool: $(B)/mqoff-mosqconf
$(B)/mqoff-mosqconf: tools/mosqconf/mosqconf.c $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $< $(B)/libmqoff.a $(LIBS) $(LDFLAGS) -o $@

# mqoff_mosquitto.so, the Mosquitto 2.0 broker plugin (src/plugin): its own objects and the
# parts of the library it uses, position-independent, every symbol hidden but the plugin API.
PLUGIN_SRCS = $(sort $(wildcard src/plugin/*.c)) src/conf/mosqconf.c src/conf/mosqpolicy.c src/acl/acl.c \
              src/topic/topic.c src/core/file.c src/core/buf.c src/core/map.c
PLUGIN_OBJS = $(PLUGIN_SRCS:%.c=$(B)/pic/%.o)
plugin: $(B)/mqoff_mosquitto.so
$(B)/mqoff_mosquitto.so: $(PLUGIN_OBJS)
	$(CC) -shared $(PLUGIN_OBJS) \
	  $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null || echo -lcjson) -o $@.tmp
	@# the broker provides mosquitto_*; anything else unresolved is a missing source
	@if nm -D --undefined-only $@.tmp | grep -vE ' (w|U) (mosquitto_|cJSON_)|@|^ +w ' | grep .; then \
	  echo "$@: unresolved symbols above"; rm -f $@.tmp; exit 1; fi
	mv $@.tmp $@
$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

# mqoffctl: asks a running mqoff over its control socket (tools/ctl).
ctl-tool: $(B)/mqoffctl
$(B)/mqoffctl: tools/ctl/mqoffctl.c $(B)/libmqoff.a
	@mkdir -p $(@D)
	$(CC) $(XCFLAGS) $< $(B)/libmqoff.a $(LIBS) -o $@

# ASan+UBSan build of the library, unit tests and corpus replays, in its own tree.
ASAN_CFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan-build:
	$(MAKE) B=build-asan CFLAGS="$(ASAN_CFLAGS)" tests fuzz-replay
asan: asan-build
	scripts/run-tests.sh asan

# libFuzzer targets (clang). Run one: build-fuzz/mqtt/fuzz_parser fuzz/mqtt/corpus
fuzz: $(FUZZ_BINS)
build-fuzz/%: fuzz/%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(@D)
	$(CLANG) -std=c11 $(WARN) -Wno-unused-command-line-argument -O1 -g $(CPPFLAGS) -Itests/unit/$(notdir $(@D)) \
	  -fsanitize=fuzzer,address,undefined $< $(FUZZ_LIB_SRCS) $(call helpers_of,tests/unit/$(notdir $(@D))/) $(LIBS) -o $@

deps:
	scripts/deps.sh

# What `make install` installs (PREFIX=/usr/local, DESTDIR; see scripts/install.sh for the
# other directories): mqoff, its tools, the shim and plugin when built, man pages, the systemd
# unit, the example configuration. `make deb`: the Debian package, in build/deb/.
PREFIX  ?= /usr/local
INSTALL_BINS = bin mosqconf-tool plugin ctl-tool shim
install-bins: $(INSTALL_BINS)
install: install-bins
	B=$(B) PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) scripts/install.sh
deb:
	scripts/deb.sh

# Everything: deps, build, unit tests, sanitizer build, corpus replays, lab tests.
test: deps
	$(MAKE) all
	$(MAKE) asan-build
	scripts/run-tests.sh unit fuzz asan lab

unit: all
	scripts/run-tests.sh unit fuzz

demo: deps all
	scripts/demo.sh

# The lab benchmark (root, ~35 min): mqoff proxy, monitor and intercept against Mosquitto direct, written
# to docs/BENCHMARKS.md and docs/bench-latency.png. Arguments: make bench BENCH_ARGS="--quick"
# or BENCH_ARGS="p2p-1000 saturation" (see bench/run.sh).
bench: deps bin shim bench-tool bridge-tool
	bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJS:.o=.d) $(PLUGIN_OBJS:.o=.d)
