# Stockade — see README.md. Build output goes to $(BUILDDIR).

CC ?= gcc
CLANG ?= clang
PREFIX ?= /usr/local
DESTDIR ?=
BUILDDIR ?= build
FUZZ_RUNS ?= 1000000

PKGS := libcjson openssl libcurl libsystemd libseccomp libcap fuse3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 -g -O2 -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	$(WARNINGS) -Icommon -I. $(PKG_CFLAGS)
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ifeq ($(SANITIZE),1)
BASE_CFLAGS += $(SANITIZE_FLAGS) -O1
LDFLAGS += $(SANITIZE_FLAGS)
endif
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := -Wl,--as-needed -Wl,-z,relro,-z,now $(LDFLAGS)

MAINS := agent/stockadectl.c $(wildcard agent/stockaded.c agent/stockade-keeper.c enforcer/stockade-runc.c)
BINS := $(patsubst %.c,$(BUILDDIR)/bin/%,$(notdir $(MAINS)))
# The broker's helper parent: libc only (no pkg-config libraries on its link line).
HELPER := $(BUILDDIR)/bin/stockade-helper
LIB_SRCS := $(filter-out $(MAINS) enforcer/stockade-helper.c,$(wildcard common/*.c policy/*.c proto/*.c enforcer/*.c agent/*.c))
LIB_OBJS := $(patsubst %.c,$(BUILDDIR)/obj/%.o,$(LIB_SRCS))
LIB := $(BUILDDIR)/libstockade.a

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILDDIR)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILDDIR)/tests/%-replay,$(FUZZ_SRCS))
BENCH_SRCS := $(wildcard tests/bench/bench-*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILDDIR)/tests/%,$(BENCH_SRCS))

# Man pages: scdoc sources docs/man/NAME.SECTION.scd, built into $(BUILDDIR)/man/NAME.SECTION.
MAN_SRCS := $(wildcard docs/man/*.scd)
MANS := $(patsubst docs/man/%.scd,$(BUILDDIR)/man/%,$(MAN_SRCS))

FUZZ_DIR := build/fuzz
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Icommon -I. $(PKG_CFLAGS) \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIB_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRCS))

.PHONY: all deps test check fuzz fuzz-build tests-build install clean demo deb
.SUFFIXES:
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BINS) $(HELPER) $(MANS)

deps:
	@scripts/deps.sh

$(BUILDDIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILDDIR)/bin/%: $(BUILDDIR)/obj/agent/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

# libc only: it holds the agent's fds while the agent restarts.
$(BUILDDIR)/bin/stockade-keeper: $(BUILDDIR)/obj/agent/stockade-keeper.o
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS)

$(BUILDDIR)/bin/stockade-runc: $(BUILDDIR)/obj/enforcer/stockade-runc.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

$(HELPER): $(BUILDDIR)/obj/enforcer/stockade-helper.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS)

$(BUILDDIR)/tests/test-%: $(BUILDDIR)/obj/tests/unit/test-%.o $(BUILDDIR)/obj/tests/unit/test.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

$(BUILDDIR)/tests/fuzz-%-replay: $(BUILDDIR)/obj/tests/fuzz/fuzz-%.o $(BUILDDIR)/obj/tests/fuzz/replay.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

$(BUILDDIR)/tests/bench-%: $(BUILDDIR)/obj/tests/bench/bench-%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

$(BUILDDIR)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	scdoc <$< >$@

tests-build: $(BINS) $(HELPER) $(MANS) $(UNIT_BINS) $(REPLAY_BINS) $(BENCH_BINS)

# libFuzzer builds use clang and their own objects.
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz-%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz-%.o $(FUZZ_LIB_OBJS)
	$(CLANG) -fsanitize=fuzzer,address,undefined $^ -o $@ $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)

test: deps
	@$(MAKE) --no-print-directory -j$$(nproc) tests-build fuzz-build >$(BUILDDIR).log 2>&1 || { cat $(BUILDDIR).log; exit 1; }
	@tests/run --build $(BUILDDIR) --fuzz $(FUZZ_DIR)

check: deps
	@mkdir -p build
	@$(MAKE) --no-print-directory -j$$(nproc) BUILDDIR=build/check SANITIZE=1 tests-build >build/check.log 2>&1 || { cat build/check.log; exit 1; }
	@STOCKADE_SANITIZED=1 tests/run --build build/check

fuzz: deps
	@$(MAKE) --no-print-directory -j$$(nproc) fuzz-build
	@tests/fuzz/run-fuzzers $(FUZZ_DIR) $(FUZZ_RUNS)

demo: deps
	@$(MAKE) --no-print-directory -j$$(nproc) all
	@scripts/demo.sh $(BUILDDIR)/bin

# The units name $(PREFIX)'s binaries; their sources say /usr/local.
UNIT_SED := sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/usr/local/libexec/stockade|$(PREFIX)/libexec/stockade|g'

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/stockade
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	ln -sf ../../bin/stockade-runc $(DESTDIR)$(PREFIX)/libexec/stockade/runc
	install -m 0755 $(HELPER) $(DESTDIR)$(PREFIX)/libexec/stockade/stockade-helper
	install -d $(DESTDIR)/lib/systemd/system/docker.service.d $(DESTDIR)/lib/systemd/system/containerd.service.d \
		$(DESTDIR)/usr/lib/tmpfiles.d $(DESTDIR)/usr/lib/sysusers.d
	for f in stockaded.service stockaded.socket docker.service.d/stockade.conf containerd.service.d/stockade.conf; do \
		$(UNIT_SED) systemd/$$f >$(DESTDIR)/lib/systemd/system/$$f && chmod 0644 $(DESTDIR)/lib/systemd/system/$$f || exit 1; \
	done
	install -m 0644 systemd/stockade.tmpfiles.conf $(DESTDIR)/usr/lib/tmpfiles.d/stockade.conf
	install -m 0644 systemd/stockade.sysusers.conf $(DESTDIR)/usr/lib/sysusers.d/stockade.conf
	for m in $(MANS); do \
		install -d $(DESTDIR)$(PREFIX)/share/man/man$${m##*.} && install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$${m##*.}/ || exit 1; \
	done

# stockade_VERSION_amd64.deb in $(BUILDDIR)/, built by dpkg-buildpackage from a copy of the
# sources (the version is debian/changelog's).
deb: deps
	@scripts/deb.sh $(BUILDDIR)

clean:
	rm -rf build build.log

-include $(shell find $(BUILDDIR)/obj $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
