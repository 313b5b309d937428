# libmpnas - build, test, install. See README.md for the options.
#
#   make                 lib/libmpnas.a and lib/libmpnas.so.<version> (+ symlinks), bin/mpnas
#   make test            build and run the test suite (ends with "N passed, N failed")
#   make OPENMP=0        build without OpenMP (default OPENMP=1)
#   make SAN=address,undefined test     sanitizer build (objects kept apart)
#   make test-neon       cross-build for aarch64 and run the kernel tests under qemu
#   make test-tsan       ThreadSanitizer build (clang, no OpenMP) of the threaded tests
#   make fuzz            libFuzzer targets (tests/fuzz/fuzz.mk, docs/FUZZING.md)
#   make install PREFIX=/usr/local DESTDIR=   (also LIBDIR, INCLUDEDIR, PKGCONFIGDIR, BINDIR)
#   make abi-check       compare the public ABI with the baseline in abi/ (abi-update: rewrite it)
#   make bench           kernel benchmark (bench/)

CC       ?= cc
OPENMP   ?= 1
SAN      ?=
BUILD    ?= build/$(notdir $(CC))$(if $(filter 1,$(OPENMP)),-omp)$(if $(SAN),-san)
# Where the built libraries and the mpnas command go (output folders of the build, not
# install folders).
LIB_OUT  ?= lib
BIN_OUT  ?= bin
# Install folders (GNU style), each under $(DESTDIR) when installing; e.g. a multiarch
# LIBDIR=/usr/lib/x86_64-linux-gnu. BINDIR is for programs (the mpnas command).
PREFIX       ?= /usr/local
DESTDIR      ?=
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
BINDIR       ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# Prefix for running test programs (e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu").
RUN      ?=
# V=1 prints the full compiler commands.
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)
# Test programs to run (default: all tests/test_*.c).
TESTS    ?= $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

MAJOR := $(shell sed -n 's/^\#define MPNAS_VERSION_MAJOR //p' include/mpnas.h)
MINOR := $(shell sed -n 's/^\#define MPNAS_VERSION_MINOR //p' include/mpnas.h)
PATCH := $(shell sed -n 's/^\#define MPNAS_VERSION_PATCH //p' include/mpnas.h)
VERSION := $(MAJOR).$(MINOR).$(PATCH)
SONAME  := libmpnas.so.$(MAJOR)

MACHINE := $(shell $(CC) -dumpmachine)
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O3 -g
# -fno-math-errno: the library never reads errno after maths, and it lets sqrtf vectorise.
BASEFLAGS := -std=c11 $(WARN) -fPIC -fvisibility=hidden -fno-math-errno
CPPFLAGS_LIB := -Iinclude -Isrc -DMPNAS_BUILDING_LIBRARY
LDLIBS  := -lm

ifeq ($(OPENMP),1)
  BASEFLAGS += -fopenmp
  OMPLINK := -fopenmp
endif
ifneq ($(SAN),)
  BASEFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
  SANLINK := -fsanitize=$(SAN)
endif

LIB_SRC := $(shell find src -name '*.c' | sort)
ifneq ($(findstring x86_64,$(MACHINE)),)
  LIB_SRC := $(filter-out %-neon.c,$(LIB_SRC))
  ifneq ($(wildcard src/kernels/table-avx2.c),)
    CPPFLAGS_LIB += -DMPNAS_HAVE_AVX2
  endif
  AVX2FLAGS := -mavx2 -mfma
  # only src/kernels/q8/q8-vnni-avx2.c, whose table dispatch.c picks when CPUID has AVX-VNNI
  VNNIFLAGS := -mavxvnni
  # only *-avx512.c files (the "avx512" tables' kernels), which dispatch.c picks when CPUID
  # has AVX-512 F/VL/BW/DQ and the OS saves the zmm state
  AVX512FLAGS := -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma -mavx2
  # and *-vnni-avx512.c (the "avx512+vnni" table's int8 kernels) also AVX512-VNNI, which
  # dispatch.c requires for that table
  AVX512VNNIFLAGS := -mavx512vnni
else ifneq ($(findstring aarch64,$(MACHINE)),)
  LIB_SRC := $(filter-out %-avx2.c %-avx512.c,$(LIB_SRC))
  ifneq ($(wildcard src/kernels/table-neon.c),)
    CPPFLAGS_LIB += -DMPNAS_HAVE_NEON
  endif
  # only src/kernels/q8/q8-dotprod-neon.c, whose table dispatch.c picks when HWCAP has ASIMDDP
  DOTPRODFLAGS := -march=armv8.2-a+dotprod
else
  LIB_SRC := $(filter-out %-avx2.c %-avx512.c %-neon.c,$(LIB_SRC))
endif

LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
STATIC  := $(LIB_OUT)/libmpnas.a
SHARED  := $(LIB_OUT)/libmpnas.so.$(VERSION)
STAMP   := $(BUILD)/config.stamp
CONFIG  := $(CC) $(CFLAGS) $(BASEFLAGS) $(CPPFLAGS_LIB)

.PHONY: all test test-neon check-symbols abi-check abi-update install uninstall clean examples cli
all: $(STATIC) $(SHARED) cli

# Rebuild everything when the compiler or flags change.
$(STAMP): FORCE
	@mkdir -p $(dir $@)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(CONFIG)" ]; then echo "$(CONFIG)" > $@; fi
FORCE:

$(BUILD)/obj/%.o: src/%.c $(STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) $(CPPFLAGS_LIB) $(if $(findstring -avx2.c,$<),$(AVX2FLAGS))$(if $(findstring -avx512.c,$<),$(AVX512FLAGS))$(if $(findstring -vnni-avx2.c,$<), $(VNNIFLAGS))$(if $(findstring -vnni-avx512.c,$<), $(AVX512VNNIFLAGS))$(if $(findstring -dotprod-neon.c,$<), $(DOTPRODFLAGS)) -MMD -MP -c $< -o $@

-include $(LIB_OBJ:.o=.d)

# $(LIB_OUT) (lib/) is shared by every configuration: rebuild it when that changes.
LIBSTAMP := $(LIB_OUT)/.config-stamp
$(LIBSTAMP): FORCE
	@mkdir -p $(LIB_OUT)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(CONFIG)" ]; then echo "$(CONFIG)" > $@; fi

$(STATIC): $(LIB_OBJ) $(LIBSTAMP)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)$(AR) rcs $@ $(LIB_OBJ)

$(SHARED): $(LIB_OBJ) lib/mpnas.map $(LIBSTAMP)
	@echo "  LD      $@"
	$(Q)$(CC) -shared $(CFLAGS) $(BASEFLAGS) -Wl,-soname,$(SONAME) -Wl,--version-script=lib/mpnas.map \
	  -o $@ $(LIB_OBJ) $(OMPLINK) $(SANLINK) $(LDLIBS)
	@ln -sf libmpnas.so.$(VERSION) $(LIB_OUT)/$(SONAME)
	@ln -sf $(SONAME) $(LIB_OUT)/libmpnas.so

# ---- The mpnas command (cli/, docs/CLI.md) ---------------------------------------------
# Linked with the static library, so an installed command needs no libmpnas.so. PNG and
# JPEG support comes from libpng and libjpeg when this $(CC) can link them
# (cli/image-libs.sh, run once per configuration); the library itself never links them.
CLI_OBJ   := $(patsubst cli/%.c,$(BUILD)/cli/%.o,$(wildcard cli/*.c))
CLI_BIN   := $(BUILD)/cli/mpnas
CLI_FLAGS := $(BUILD)/cli/image-libs
CLI_CPPFLAGS := -Iinclude -Iexamples -Ibench -D_XOPEN_SOURCE=700
PKG_CONFIG ?= pkg-config

$(CLI_FLAGS): $(STAMP) cli/image-libs.sh
	@mkdir -p $(dir $@)
	$(Q)CC="$(CC)" PKG_CONFIG="$(PKG_CONFIG)" sh cli/image-libs.sh $@

$(BUILD)/cli/%.o: cli/%.c $(CLI_FLAGS) $(STAMP)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) $(CLI_CPPFLAGS) $$(sed -n 1p $(CLI_FLAGS)) -MMD -MP -c $< -o $@

-include $(CLI_OBJ:.o=.d)

$(CLI_BIN): $(CLI_OBJ) $(STATIC)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) -o $@ $(CLI_OBJ) $(STATIC) $$(sed -n 2p $(CLI_FLAGS)) \
	  $(OMPLINK) $(SANLINK) $(LDLIBS)

# $(BIN_OUT) (bin/), like $(LIB_OUT), holds the last configuration built.
BINSTAMP := $(BIN_OUT)/.config-stamp
$(BINSTAMP): FORCE
	@mkdir -p $(BIN_OUT)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(CONFIG)" ]; then echo "$(CONFIG)" > $@; fi
$(BIN_OUT)/mpnas: $(CLI_BIN) $(BINSTAMP)
	@cp $(CLI_BIN) $@
cli: $(BIN_OUT)/mpnas

# The MPI host program (docs/SCALING.md): only where an MPI compiler wrapper is found,
# told to use $(CC) underneath (OpenMPI: OMPI_CC, MPICH: MPICH_CC).
MPICC    ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo 1)
MPI_EXAMPLE := $(if $(HAVE_MPI),$(BUILD)/examples/mpnas_mpi)

# ---- Tests: each tests/test_*.c is its own program; tests/run.sh adds them up. --------
TEST_BIN := $(patsubst %,$(BUILD)/tests/%,$(TESTS))
TEST_CPPFLAGS := -Itests -D_POSIX_C_SOURCE=200809L $(filter-out -DMPNAS_BUILDING_LIBRARY,$(CPPFLAGS_LIB))

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS) -pthread

# Script tests (tests/test_*.sh: the Python wrapper's, the mpnas command's) run in native
# builds only: not under a RUN prefix (cross builds), not when TESTS picks programs; with
# sanitizers only the command's (python cannot load an instrumented library). They get
# $(BUILD) for the examples, the command and the image fixture generator.
# tests/test_onnx.sh runs with sanitizers too: the runtimes it checks against (Python's
# onnx, Node's onnxruntime) never load libmpnas; it builds examples/embedded_model.c
# with this configuration's compiler and flags (EXAMPLE_CC, EXAMPLE_LIBS).
SAN_SCRIPTS  := tests/test_cli.sh tests/test_onnx.sh
TEST_SCRIPTS ?= $(if $(or $(RUN),$(filter-out file,$(origin TESTS))),,$(if $(SAN),$(SAN_SCRIPTS),$(wildcard tests/test_*.sh)))
TEST_SCRIPT_DEPS := $(if $(filter-out $(SAN_SCRIPTS),$(TEST_SCRIPTS)),$(SHARED) $(BUILD)/examples/infer $(MPI_EXAMPLE)) \
  $(if $(filter $(SAN_SCRIPTS),$(TEST_SCRIPTS)),$(CLI_BIN) $(BUILD)/tests/cli_fixture) \
  $(if $(filter tests/test_onnx.sh,$(TEST_SCRIPTS)),$(BUILD)/tests/onnx_fixture $(BUILD)/examples/infer)

# The image-folder fixture of tests/test_cli.sh (PNG and JPEG files, IDX files): built
# with the image libraries when the command has them, else a stub that says so.
$(BUILD)/tests/cli_fixture: tests/cli_fixture.c $(CLI_FLAGS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) -D_POSIX_C_SOURCE=200809L $$(sed -n 1p $(CLI_FLAGS)) $< -o $@ \
	  $$(sed -n 2p $(CLI_FLAGS)) $(SANLINK) -lm

# The ONNX test's model and reference outputs (tests/onnx_fixture.c, on the library).
$(BUILD)/tests/onnx_fixture: tests/onnx_fixture.c examples/synthetic.h $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) -Iinclude $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

test: all $(TEST_BIN) $(TEST_SCRIPT_DEPS)
	@RUN="$(RUN)" LIB_OUT="$(LIB_OUT)" BUILD="$(BUILD)" \
	  EXAMPLE_CC="$(CC) $(CFLAGS) $(BASEFLAGS) -I$(abspath include) -I$(abspath examples)" \
	  EXAMPLE_LIBS="$(abspath $(STATIC)) $(OMPLINK) $(SANLINK) $(LDLIBS)" \
	  sh tests/run.sh $(TEST_BIN) $(TEST_SCRIPTS)

check-symbols: $(SHARED)
	sh tests/check_symbols.sh $(LIB_OUT)/libmpnas.so

# The public ABI against the baseline abi/libmpnas.abi + abi/constants.txt (abigail-tools;
# docs/API-STABILITY.md says what fails). abi-update rewrites the baseline, on purpose only.
abi-check: $(SHARED)
	sh abi/abi.sh check $(SHARED)
abi-update: $(SHARED)
	sh abi/abi.sh update $(SHARED)

# NEON: cross-compile with Debian's gcc-aarch64-linux-gnu, run under qemu-aarch64.
AARCH64_CC ?= aarch64-linux-gnu-gcc
test-neon:
	$(MAKE) CC="$(AARCH64_CC)" OPENMP=0 SAN= BUILD=build/aarch64 LIB_OUT=build/aarch64/lib BIN_OUT=build/aarch64/bin \
	  RUN="qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu" TESTS="$(NEON_TESTS)" test

# Under qemu, every test but the two whole-pipeline ones, which emulation makes too slow
# for CI (measured on the 2-core CI machine: test_e2e ~6 min, test_search > 20 min; all
# the others together ~2 min, most of it test_ops_misc, test_kernels, test_ops_conv).
# The NEON code they run is the kernels and ops that test_*kernels and test_ops_* cover.
# Everything: make test-neon NEON_TESTS='$(TESTS)'.
NEON_SLOW_TESTS := test_e2e test_search
NEON_TESTS ?= $(filter-out $(NEON_SLOW_TESTS),$(TESTS))

# ThreadSanitizer over the tests that run threads of their own (test_model, test_quantize:
# float and int8 predictors on six pthreads sharing one model and context). Clang, OPENMP=0: libgomp is not built
# with TSan, so its barriers would be reported as races that are not there.
TSAN_TESTS ?= test_model test_quantize
test-tsan:
	$(MAKE) CC=clang OPENMP=0 SAN=thread BUILD=build/tsan LIB_OUT=build/tsan/lib BIN_OUT=build/tsan/bin \
	  TESTS="$(TSAN_TESTS)" test
.PHONY: test-tsan

# ---- Install ------------------------------------------------------------------------
# mpnas.pc is written at every install, for the install folders of that call; a folder
# under PREFIX is written relative to ${prefix}. Libs.private has what a static link
# needs besides libmpnas.a: -lm, and in an OpenMP build the compiler's OpenMP flag.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
  -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
  -e 's|@LIBS_PRIVATE@|$(strip $(OMPLINK) $(LDLIBS))|g'

install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/mpnas.h $(DESTDIR)$(INCLUDEDIR)/mpnas.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libmpnas.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libmpnas.so.$(VERSION)
	ln -sf libmpnas.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmpnas.so
	$(PC_SED) lib/mpnas.pc.in > $(BUILD)/mpnas.pc
	install -m 644 $(BUILD)/mpnas.pc $(DESTDIR)$(PKGCONFIGDIR)/mpnas.pc
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/mpnas

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/mpnas.h $(DESTDIR)$(LIBDIR)/libmpnas.a \
	  $(DESTDIR)$(LIBDIR)/libmpnas.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libmpnas.so $(DESTDIR)$(PKGCONFIGDIR)/mpnas.pc \
	  $(DESTDIR)$(BINDIR)/mpnas

clean:
	rm -rf build $(LIB_OUT)/libmpnas.a $(LIB_OUT)/libmpnas.so* $(LIB_OUT)/.config-stamp \
	  $(BIN_OUT)/mpnas $(BIN_OUT)/.config-stamp

# ---- Examples and the main job ----------------------------------------------------------
# embedded_model.c needs a model_data.h made from a trained model: tests/test_onnx.sh
# builds it (with EXAMPLE_CC / EXAMPLE_LIBS from `make test`); mpnas_mpi.c needs mpicc.
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(filter-out examples/embedded_model.c examples/mpnas_mpi.c,$(wildcard examples/*.c)))
$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) -Iinclude -Iexamples $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)
# The MPI host program (MPICC, MPI_EXAMPLE: defined before the tests).
$(BUILD)/examples/mpnas_mpi: examples/mpnas_mpi.c $(wildcard examples/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  MPICC   $<"
	$(Q)OMPI_CC="$(CC)" MPICH_CC="$(CC)" $(MPICC) $(CFLAGS) $(BASEFLAGS) -Iinclude -Iexamples $< -o $@ \
	  $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)
examples: $(EXAMPLES) $(MPI_EXAMPLE)

# The main job: the pipeline on MDD-6 if `make data` built it, else on the embedded set.
demo: $(BUILD)/examples/quickstart
	$(BUILD)/examples/quickstart
.PHONY: demo

# ---- Data and benchmarks live in their own fragments --------------------------------
# bench/bench.mk defines `bench` (kernel benchmark); tools/data/make_data.sh builds MDD-6,
# tools/data/make_heldout.sh the held-out set (data/heldout/, tools/data/README.md).
-include bench/bench.mk
include tests/fuzz/fuzz.mk
data:
	sh tools/data/make_data.sh
.PHONY: data
data-heldout:
	sh tools/data/make_heldout.sh
.PHONY: data-heldout
