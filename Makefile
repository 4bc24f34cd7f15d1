# tide — build, test, run, bench, install.
#
#   make            build/tide, build/libtide.a, build/libtide.so, build/tide.so, build/tide.pc
#   make run        install missing Debian packages, build, run examples/hello.lua
#   make test       install missing Debian packages, build, run every suite
#   make check      every suite built with -fsanitize=address,undefined
#   make tsan       C tests and threaded embedding examples under ThreadSanitizer
#   make ndebug     every suite built with -DNDEBUG (asserts compiled out)
#   make fuzz       libFuzzer targets, FUZZ_SECONDS (60) each (spec/fuzz/)
#   make bench      benchmarks beside their peers (see bench/README.md)
#   make install PREFIX=/usr/local   /   make uninstall
#
# BUILD=dir puts every artefact in another folder (parallel builds, sanitizers).

VERSION    := 0.1.0
SOVERSION  := 0
BUILD      ?= build
PREFIX     ?= /usr/local
CC         ?= cc
OPT        ?= -O2 -g
SANITIZE   ?=

PKGS       := lua5.4 libuv openssl zlib
DEPS_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null || echo -I/usr/include/lua5.4)
UV_LIBS    := $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
SSL_LIBS   := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
Z_LIBS     := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)

# -fvisibility=hidden: the libraries export what core/tide.h marks
# TIDE_EXTERN, nothing else (spec/smoke/abi.sh checks it).
CFLAGS     := $(OPT) -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Wall -Wextra \
              -Icore -Ibindings $(DEPS_CFLAGS) $(SANITIZE) $(EXTRA_CFLAGS)
LDFLAGS    := $(SANITIZE) $(EXTRA_LDFLAGS)
LIBS       := $(UV_LIBS) $(SSL_LIBS) $(Z_LIBS) -lm -lpthread -ldl

CORE_SRC   := $(sort $(wildcard core/*.c))
BIND_SRC   := $(sort $(filter-out bindings/main.c,$(wildcard bindings/*.c)))
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
BIND_OBJ   := $(BIND_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ    := $(CORE_OBJ) $(BIND_OBJ)
CTEST_SRC  := $(sort $(wildcard spec/core/*.c))
HEADERS    := $(wildcard core/*.h bindings/*.h)

all: $(BUILD)/tide $(BUILD)/libtide.a $(BUILD)/libtide.so $(BUILD)/tide.so $(BUILD)/tide.pc

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtide.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtide.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtide.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ $(LUA_LIBS) $(LIBS)

$(BUILD)/libtide.so: $(BUILD)/libtide.so.$(VERSION)
	ln -sf libtide.so.$(VERSION) $(BUILD)/libtide.so.$(SOVERSION)
	ln -sf libtide.so.$(VERSION) $@

# The Lua C module for a stock lua5.4: takes the Lua API from the interpreter.
$(BUILD)/tide.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

# -Wl,-E: C modules loaded by tide find the Lua API in the binary.
$(BUILD)/tide: $(BUILD)/bindings/main.o $(BUILD)/libtide.a
	$(CC) $(LDFLAGS) -Wl,-E -o $@ $^ $(LUA_LIBS) $(LIBS) -lreadline

$(BUILD)/tide.pc: tide.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' tide.pc.in > $@

# Every TEST_IMPL(name) of spec/core/*.c is listed for spec/core/main.c.
$(BUILD)/test_list.h: $(CTEST_SRC)
	@mkdir -p $(BUILD)
	grep -ho 'TEST_IMPL([a-z0-9_]*)' $(filter-out spec/core/main.c,$(CTEST_SRC)) | sed 's/TEST_IMPL(\(.*\))/X(\1)/' > $@

$(BUILD)/core_tests: $(CTEST_SRC) $(BUILD)/test_list.h $(BUILD)/libtide.a spec/core/test.h
	$(CC) $(CFLAGS) -Ispec/core -I$(BUILD) $(LDFLAGS) -o $@ $(CTEST_SRC) $(BUILD)/libtide.a $(LUA_LIBS) $(LIBS)

deps:
	@sh spec/deps.sh

run: deps all
	$(BUILD)/tide examples/hello.lua

test: deps all $(BUILD)/core_tests
	@BUILD=$(BUILD) bash spec/run.sh

# -z nodelete: tide.so stays mapped after lua_close unloads it, so that
# LeakSanitizer's reports at exit name tide's functions.
check:
	$(MAKE) BUILD=$(BUILD)-check OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-Wl,-z,nodelete $(EXTRA_LDFLAGS)" test

# A release-style build: assert() compiled out. Tests in $(BUILD)-ndebug.
ndebug:
	$(MAKE) BUILD=$(BUILD)-ndebug EXTRA_CFLAGS="-DNDEBUG $(EXTRA_CFLAGS)" test

# ThreadSanitizer: the library and the C tests in $(BUILD)-tsan; the C tests
# and the threaded embedding examples (threads.c, async_fn.c) run under it.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/spec/tsan.supp"
tsan:
	$(MAKE) BUILD=$(BUILD)-tsan OPT="-O1 -g" SANITIZE="-fsanitize=thread" \
	  $(BUILD)-tsan/libtide.a $(BUILD)-tsan/core_tests
	$(TSAN_ENV) TEST_TIMEOUT=300 BUILD=$(BUILD)-tsan ONLY="core embed_threads embed_async_fn" bash spec/run.sh

# libFuzzer targets (spec/fuzz/README.md): the library built by clang with
# ASan, UBSan and coverage in $(BUILD)-fuzz, then each target fed mutated
# inputs for FUZZ_SECONDS seconds (make fuzz FUZZ_SECONDS=10).
FUZZ_SECONDS ?= 60
FUZZ_LUA   := h1 fields resp websocket tls
FUZZ_C     := marshal
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
fuzz: deps
	$(MAKE) BUILD=$(BUILD)-fuzz CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(addprefix $(BUILD)-fuzz/fuzz/,$(FUZZ_LUA) $(FUZZ_C))
	@BUILD=$(BUILD)-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) bash spec/fuzz/run.sh

# A Lua target is lua_target.c running spec/fuzz/T.lua on the modules of lua/.
$(FUZZ_LUA:%=$(BUILD)/fuzz/%): $(BUILD)/fuzz/%: spec/fuzz/%.lua spec/fuzz/lua_target.c $(BUILD)/libtide.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -DFUZZ_ROOT='"$(CURDIR)"' -DFUZZ_SCRIPT='"$(CURDIR)/$<"' \
	  -o $@ spec/fuzz/lua_target.c $(BUILD)/libtide.a $(LUA_LIBS) $(LIBS)

$(FUZZ_C:%=$(BUILD)/fuzz/%): $(BUILD)/fuzz/%: spec/fuzz/%.c $(BUILD)/libtide.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libtide.a $(LUA_LIBS) $(LIBS)

.PHONY: fuzz

# Steady load for SOAK_SECONDS (60): RSS and fds of the HTTP, echo and pool
# processes must stay flat (spec/soak.sh).
soak: deps all
	@BUILD=$(BUILD) bash spec/soak.sh

bench: deps all
	@BUILD=$(BUILD) bash bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/lua/5.4 $(DESTDIR)$(PREFIX)/share/lua/5.4
	install -m 755 $(BUILD)/tide $(DESTDIR)$(PREFIX)/bin/tide
	install -m 644 $(BUILD)/libtide.a $(DESTDIR)$(PREFIX)/lib/libtide.a
	install -m 755 $(BUILD)/libtide.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtide.so.$(VERSION)
	ln -sf libtide.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtide.so.$(SOVERSION)
	ln -sf libtide.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtide.so
	install -m 644 core/tide.h $(DESTDIR)$(PREFIX)/include/tide.h
# (tide.pc names the PREFIX given now, not the one of the build)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' tide.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tide.pc
	install -m 755 $(BUILD)/tide.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/tide.so
	cd lua && find tide -name '*.lua' -exec install -D -m 644 {} $(DESTDIR)$(PREFIX)/share/lua/5.4/{} \;

# LuaRocks (tide-scm-1.rockspec): `luarocks make` builds with `make rock`
# and installs with `make install-rock` into the tree's LIBDIR, LUADIR and
# BINDIR.
rock: $(BUILD)/tide.so $(BUILD)/tide

install-rock: rock
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LUADIR) $(DESTDIR)$(BINDIR)
	install -m 755 $(BUILD)/tide.so $(DESTDIR)$(LIBDIR)/tide.so
	install -m 755 $(BUILD)/tide $(DESTDIR)$(BINDIR)/tide
	cd lua && find tide -name '*.lua' -exec install -D -m 644 {} $(DESTDIR)$(LUADIR)/{} \;

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/tide $(DESTDIR)$(PREFIX)/lib/libtide.a \
	  $(DESTDIR)$(PREFIX)/lib/libtide.so* $(DESTDIR)$(PREFIX)/include/tide.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/tide.pc $(DESTDIR)$(PREFIX)/lib/lua/5.4/tide.so
	rm -rf $(DESTDIR)$(PREFIX)/share/lua/5.4/tide

clean:
	rm -rf build build-check build-*

.PHONY: all deps run test check ndebug tsan soak bench install uninstall clean rock install-rock
