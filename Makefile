# mallet -- one Makefile; variants are variables:
#   make DEBUG=0..3            internal assert level
#   make SAN=address|undefined|thread
#   make TRACK=valgrind        describe blocks to memcheck
#   make SECURE=1              the secure build (guard pages, canaries, ...);
#                              `make secure` makes build/libmallet-secure.so
#   make SECURE=whole|edges    the same, every free block filled whole, or
#                              only the two ends of those over 128 bytes
#                              (measured against in bench/sections/50-secure.sh)
# A variant builds into its own folder under build/, so they coexist.
#   make install [DESTDIR=] [PREFIX=/usr/local] [LIBDIR=]   and uninstall
#   make deb                   the Debian packages, into build/deb/

CC      ?= cc
DEBUG   ?= 0
SAN     ?=
TRACK   ?=
SECURE  ?=
PREFIX  ?= /usr/local

# The version is written once, in include/mallet.h; the library's SONAME is
# libmallet.so.MAJOR.
VERSION := $(shell awk '/^\#define MALLET_VERSION_(MAJOR|MINOR|PATCH) / { v = v s $$3; s = "." } END { print v }' include/mallet.h)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))

# Where `make install` puts things, DESTDIR before each. Under PREFIX=/usr
# the libraries go to Debian's multiarch folder (lib/x86_64-linux-gnu).
BINDIR     ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
ifeq ($(PREFIX),/usr)
MULTIARCH  := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || $(CC) -print-multiarch 2>/dev/null)
endif
LIBDIR     ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))

BUILD := build$(if $(SECURE),/secure$(if $(filter whole edges,$(SECURE)),-$(SECURE)))$(if $(SAN),/san-$(SAN))$(if $(TRACK),/track-$(TRACK))$(if $(filter-out 0,$(DEBUG)),/debug-$(DEBUG))

# CPPFLAGS is for the packages' build flags (dpkg-buildflags: fortify).
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -fPIC -fvisibility=hidden -pthread \
           -Iinclude -Isrc -Iteach -DMALLET_DEBUG=$(DEBUG) $(CPPFLAGS)
LDFLAGS += -pthread
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif
ifeq ($(TRACK),valgrind)
CFLAGS  += -DMALLET_TRACK_VALGRIND=1
endif
ifneq ($(SECURE),)
CFLAGS  += -DMALLET_SECURE=1
endif
ifeq ($(SECURE),whole)
CFLAGS  += -DMALLET_FILL_ALL=UINT32_MAX
endif
ifeq ($(SECURE),edges)
CFLAGS  += -DMALLET_FILL_ALL=128
endif

# --- sources, by layer -------------------------------------------------------
# src/ is one folder per layer, bottom first (src/README.md): os and debug
# (shared with teach/), then the library's own layers.
LAYERS       := base mem prof secure api
OS_SRC       := $(wildcard src/os/*.c src/debug/*.c)
CORE_SRC     := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
OVERRIDE_SRC := $(wildcard src/override/*.c)
DESIGNS_SRC  := $(wildcard teach/[0-9][0-9]_*.c)
DESIGNS      := $(patsubst teach/%.c,%,$(DESIGNS_SRC))
TEACH_NAMES  := $(foreach d,$(DESIGNS),$(word 2,$(subst _, ,$(d))))
GC_SRC       := $(wildcard teach/gc.c teach/gc_*.c)
TEACH_SRC    := $(DESIGNS_SRC) $(filter-out teach/preload.c $(GC_SRC) $(DESIGNS_SRC),$(wildcard teach/*.c))
TOOLS_SRC    := $(wildcard tools/*.c)
TESTS_SRC    := $(wildcard tests/test_*.c)
OVR_TESTS_SRC:= $(wildcard tests/override_*.c)
BENCH_SRC    := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

OS_A    := $(BUILD)/libmallet-os.a
CORE_A  := $(BUILD)/libmallet-core.a
TEACH_A := $(BUILD)/libteach.a
LIB_A   := $(BUILD)/libmallet.a
LIB_SO  := $(BUILD)/libmallet.so
GC_A    := $(if $(GC_SRC),$(BUILD)/teach/libteach-gc.a)
TEACH_SO:= $(patsubst %,$(BUILD)/teach/libteach-%.so,$(TEACH_NAMES))
MALLET  := $(if $(TOOLS_SRC),$(BUILD)/mallet)
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TESTS_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
# Programs that replace malloc itself cannot share a process with a sanitizer.
ifeq ($(SAN),)
LIBS    := $(if $(CORE_SRC),$(LIB_A) $(LIB_SO))
OVR_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(OVR_TESTS_SRC)) \
             $(patsubst tests/%.c,$(BUILD)/tests/%.glibc,$(OVR_TESTS_SRC))
PRELOADS := $(TEACH_SO)
TRACE_SO := $(if $(wildcard tools/recorder/trace.c),$(BUILD)/libmallet-trace.so)
VIOLATION := $(BUILD)/tests/violation
PROF_SITES := $(BUILD)/tests/prof_sites
endif

SECURE_SO := $(if $(filter build,$(BUILD)),$(if $(CORE_SRC),build/libmallet-secure.so))

.PHONY: all lib teach tools tests benches deps test asan valgrind bench demo install uninstall \
        man deb clean secure FORCE
all: lib teach tools tests benches $(if $(SECURE_SO),secure)
lib: $(LIBS)
teach: $(TEACH_A) $(PRELOADS) $(GC_A)
tools: $(MALLET) $(TRACE_SO)
tests: $(TESTS) $(OVR_TESTS) $(VIOLATION) $(PROF_SITES)
benches: $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

$(OS_A): $(call obj,$(OS_SRC))
$(CORE_A): $(call obj,$(CORE_SRC))
$(TEACH_A): $(call obj,$(TEACH_SRC))
$(LIB_A): $(call obj,$(OS_SRC) $(CORE_SRC) $(OVERRIDE_SRC))
$(GC_A): $(call obj,$(GC_SRC) $(OS_SRC))
%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# The SONAME names the MAJOR version; the version script exports the malloc
# family and the mallet_* API, nothing else.
$(LIB_SO): $(call obj,$(OS_SRC) $(CORE_SRC) $(OVERRIDE_SRC)) src/override/libmallet.map
	$(CC) -shared -ftls-model=initial-exec -Wl,-z,now -Wl,-soname,libmallet.so.$(MAJOR) \
	    -Wl,--version-script=src/override/libmallet.map -o $@ $(filter %.o,$^) $(LDFLAGS)

# The secure build beside the default one: the same sources compiled with
# MALLET_SECURE=1 into build/secure/ (the library and the override tests
# linked with it), the preloadable library copied to build/libmallet-secure.so:
# through a new file renamed over the old one, never written in place, so a
# program running with the old one preloaded keeps its inode (an in-place copy
# truncates the file under it: SIGBUS).
secure:
	@$(MAKE) -s SECURE=1 lib $(patsubst tests/%.c,build/secure/tests/%,$(OVR_TESTS_SRC))
	@cmp -s build/secure/libmallet.so build/libmallet-secure.so || \
	    { cp -p build/secure/libmallet.so build/libmallet-secure.so.tmp && \
	      mv -f build/libmallet-secure.so.tmp build/libmallet-secure.so; }

# Each teach design as a preload library: the design, the one-lock wrapper
# (compiled per design), the OS seam.
$(BUILD)/teach/libteach-%.so: teach/preload.c $(TEACH_SRC) $(OS_SRC) teach/teach.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -DTEACH_PRELOAD -DTEACH_DESIGN=$* -o $@ \
	    teach/preload.c $(filter teach/%_$*.c,$(DESIGNS_SRC)) $(OS_SRC) $(LDFLAGS)

TEST_LIBS := $(TEACH_A) $(GC_A) $(if $(CORE_SRC),$(CORE_A)) $(OS_A)
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_LIBS) $(LDFLAGS) -lm
$(BUILD)/tests/override_%: tests/override_%.c $(wildcard tests/*.h) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDFLAGS) -lm
$(BUILD)/tests/override_%.glibc: tests/override_%.c $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTEST_ORACLE_GLIBC -o $@ $< $(LDFLAGS) -lm
# The library override_fidelity opens and closes (dlopen), built beside it.
$(BUILD)/tests/override_fidelity $(BUILD)/tests/override_fidelity.glibc: $(BUILD)/tests/fidelity_dso.so
$(BUILD)/tests/fidelity_dso.so: tests/fidelity_dso.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $< $(LDFLAGS)
# One heap violation per run (tests/violations.sh); it links no allocator, so
# LD_PRELOAD picks the one measured.
$(VIOLATION): tests/violation.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)
# Allocation sites of known size for the heap profiler's test (tests/prof.sh),
# linking no allocator either; -O1 with no inlining and frame pointers, so
# each site is a function of its own on every stack it allocates from.
$(PROF_SITES): tests/prof_sites.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 -fno-inline -fno-omit-frame-pointer -o $@ $< $(LDFLAGS) -lm

# Benchmark programs link the in-process allocators; the malloc they call is
# whichever LD_PRELOAD provides.
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_LIBS) $(LDFLAGS) -lm

$(MALLET): $(call obj,$(TOOLS_SRC)) $(TEST_LIBS)
	$(CC) -o $@ $^ $(LDFLAGS) -lm
# The command looks for the installed libraries relative to itself; the
# folders are recorded in a file that changes only when they do, so a
# `make install` into other folders compiles that part again.
INSTALL_DIRS := $(BUILD)/install-dirs
$(INSTALL_DIRS): FORCE
	@mkdir -p $(dir $@)
	@echo '$(PREFIX) $(BINDIR) $(LIBDIR) $(INCLUDEDIR) $(MANDIR)' | cmp -s - $@ || \
	    echo '$(PREFIX) $(BINDIR) $(LIBDIR) $(INCLUDEDIR) $(MANDIR)' > $@
$(call obj,tools/common.c tools/record.c): $(INSTALL_DIRS)
$(call obj,tools/common.c tools/record.c): CFLAGS += -DMALLET_SONAME='"libmallet.so.$(MAJOR)"' \
    -DMALLET_LIBDIR_FROM_BIN='"$(shell realpath -m --relative-to=$(BINDIR) $(LIBDIR))"'

# The trace recorder, preloaded by `mallet trace`.
$(TRACE_SO): $(wildcard tools/recorder/*.c tools/recorder/*.h)
	$(CC) $(CFLAGS) -shared -o $@ $(filter %.c,$^) $(LDFLAGS) -ldl

# --- the suite: plainly, under AddressSanitizer, under Valgrind memcheck ------
# Debian packages the suite, benchmarks and demo use (.ci/packages).
deps:
	@.ci/deps

test: deps
	@tests/run.sh plain asan valgrind ubsan tsan fuzz
asan: deps
	@tests/run.sh asan
valgrind: deps
	@tests/run.sh valgrind

# --- fuzzing: libFuzzer targets in fuzz/, built by clang into build/fuzz/ -----
#   make fuzz [FUZZ_SECONDS=60]        every target for FUZZ_SECONDS each
#   make fuzz-run FUZZ_TARGET=alloc    one target
# Past findings (fuzz/regress/NAME/*) are replayed first. New inputs land in
# build/fuzz/corpus/NAME (the committed seeds in fuzz/corpus/NAME are only
# read); a crash leaves build/fuzz/NAME-crash-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_FLAGS   := -std=gnu11 -O1 -g -Wall -Wextra -pthread -Iinclude -Isrc -Iteach -Itools \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LINK_alloc := $(OS_SRC) $(CORE_SRC)
FUZZ_LINK_trace := tools/tracefile.c

.PHONY: fuzz fuzz-build fuzz-run fuzz-list
fuzz-build: $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(OS_SRC) $(CORE_SRC) $(wildcard src/*.h src/*/*.h tools/*.h tools/*.c)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LINK_$*) -lm
fuzz-list:
	@echo $(FUZZ_NAMES)
fuzz-run: fuzz-build
	@mkdir -p $(FUZZ_DIR)/corpus/$(FUZZ_TARGET)
	$(if $(wildcard fuzz/regress/$(FUZZ_TARGET)/*),$(FUZZ_DIR)/fuzz_$(FUZZ_TARGET) \
	    $(wildcard fuzz/regress/$(FUZZ_TARGET)/*))
	$(FUZZ_DIR)/fuzz_$(FUZZ_TARGET) -max_total_time=$(FUZZ_SECONDS) -timeout=30 -close_fd_mask=2 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/$(FUZZ_TARGET)- \
	    $(FUZZ_DIR)/corpus/$(FUZZ_TARGET) fuzz/corpus/$(FUZZ_TARGET)
fuzz: deps fuzz-build
	@for t in $(FUZZ_NAMES); do $(MAKE) -s fuzz-run FUZZ_TARGET=$$t || exit 1; done

bench: deps all
	bench/run.sh

demo: deps all
	@bench/demo.sh

# --- manual pages: man/*.in with the parts made from the code (man/page.sh) ---
MAN_PAGES := $(BUILD)/man/mallet.1 $(BUILD)/man/libmallet.3
man: $(MAN_PAGES)
$(BUILD)/man/tables: man/tables.c src/base/options.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_A) $(LDFLAGS)
# The date of the sources: SOURCE_DATE_EPOCH (the packages set it), else the
# last commit's.
MAN_DATE = $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} +%Y-%m-%d)
$(MAN_PAGES): $(BUILD)/man/%: man/%.in man/page.sh include/mallet.h $(BUILD)/man/tables $(MALLET) $(INSTALL_DIRS)
	VERSION=$(VERSION) MAJOR=$(MAJOR) DATE=$(MAN_DATE) BINDIR=$(BINDIR) LIBDIR=$(LIBDIR) \
	    INCLUDEDIR=$(INCLUDEDIR) MALLET=$(MALLET) TABLES=$(BUILD)/man/tables man/page.sh $< > $@.tmp
	mv $@.tmp $@

# --- install -------------------------------------------------------------------
# Every file `make install` puts in place, as MODE:FILE:DESTINATION, and the
# links, as LINK:TARGET; `make uninstall` removes exactly these. The secure
# build shares the SONAME: it is preloaded by its path in LIBDIR/mallet/.
INSTALL_FILES := 644:include/mallet.h:$(INCLUDEDIR)/mallet.h \
    644:$(LIB_A):$(LIBDIR)/libmallet.a \
    644:$(LIB_SO):$(LIBDIR)/libmallet.so.$(VERSION) \
    644:$(SECURE_SO):$(LIBDIR)/mallet/libmallet-secure.so \
    644:$(BUILD)/mallet.pc:$(LIBDIR)/pkgconfig/mallet.pc \
    755:$(MALLET):$(BINDIR)/mallet \
    644:$(TRACE_SO):$(LIBDIR)/mallet/libmallet-trace.so \
    $(foreach t,$(PRELOADS),644:$(t):$(LIBDIR)/mallet/teach/$(notdir $(t))) \
    644:$(BUILD)/man/mallet.1:$(MANDIR)/man1/mallet.1 \
    644:$(BUILD)/man/libmallet.3:$(MANDIR)/man3/libmallet.3
INSTALL_LINKS := $(LIBDIR)/libmallet.so.$(MAJOR):libmallet.so.$(VERSION) \
    $(LIBDIR)/libmallet.so:libmallet.so.$(MAJOR)
INSTALLED := $(foreach f,$(INSTALL_FILES),$(lastword $(subst :, ,$(f)))) \
    $(foreach l,$(INSTALL_LINKS),$(firstword $(subst :, ,$(l))))
ifneq ($(filter install uninstall,$(MAKECMDGOALS)),)
ifneq ($(BUILD),build)
$(error make install installs the default build, not $(BUILD))
endif
endif

install: lib secure teach tools man $(BUILD)/mallet.pc
	@set -e; for f in $(INSTALL_FILES); do \
	    mode=$${f%%:*} file=$${f#*:}; dest=$(DESTDIR)$${file#*:} file=$${file%%:*}; \
	    echo "install $$file $$dest"; install -D -m $$mode $$file $$dest; \
	done; \
	for l in $(INSTALL_LINKS); do ln -sfn $${l#*:} $(DESTDIR)$${l%%:*}; done
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ldconfig

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@for d in $(DESTDIR)$(LIBDIR)/mallet/teach $(DESTDIR)$(LIBDIR)/mallet; do \
	    [ ! -d $$d ] || rmdir --ignore-fail-on-non-empty $$d; done
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ldconfig

# libdir and includedir relative to prefix where they are under it.
$(BUILD)/mallet.pc: mallet.pc.in include/mallet.h $(INSTALL_DIRS)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' $< > $@

# --- Debian packages: dpkg-buildpackage in a copy of the tree under build/deb/,
# which leaves the packages (libmallet1, libmallet-dev, mallet-tools) there.
# The changelog is made here, from the version in mallet.h and the date of the
# last commit.
DEB_SRC  := build/deb/mallet-$(VERSION)
DEB_JOBS ?= 2
deb:
	rm -rf build/deb && mkdir -p $(DEB_SRC)
	tar -c --exclude=./build --exclude-vcs -f - . | tar -x -C $(DEB_SRC) -f -
	{ printf 'mallet (%s) unstable; urgency=medium\n\n  * mallet %s.\n\n' $(VERSION) $(VERSION); \
	  printf ' -- %s  %s\n' "$$(sed -n 's/^Maintainer: //p' debian/control)" \
	      "$$(date -R -u -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))"; \
	} > $(DEB_SRC)/debian/changelog
	cd $(DEB_SRC) && dpkg-buildpackage -b -us -uc -J$(DEB_JOBS)
	rm -rf $(DEB_SRC)

clean:
	rm -rf build
