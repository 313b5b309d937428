# tests/fuzz/fuzz.mk - the libFuzzer targets (docs/FUZZING.md); included by the Makefile.
#
#   make fuzz                       build the three fuzzers into build/fuzz/ (clang,
#                                   -fsanitize=fuzzer,address,undefined, no OpenMP)
#   make fuzz-replay                run each fuzzer once over its committed corpus and
#                                   regression inputs (tests/fuzz/corpus, tests/fuzz/regressions)
#   make fuzz-run FUZZ_SECONDS=60   fuzz each target for FUZZ_SECONDS seconds; new inputs go
#                                   to build/fuzz/corpus/<target>, crashes to build/fuzz/artifacts
#   make fuzz-corpus                regenerate the seed corpora (tests/fuzz/gen_corpus.c)
#
# FUZZ_FLAGS adds libFuzzer options to fuzz-run (e.g. FUZZ_FLAGS=-jobs=2).
FUZZ_CC      ?= clang
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := address,undefined
FUZZ_TARGETS := model model_checkpoint search_checkpoint
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 65536
FUZZ_FLAGS   ?=

# The library is built for the fuzzers in a configuration of its own (coverage
# instrumentation and sanitizers, objects in build/fuzz); -O1 keeps the build short.
fuzz:
	$(MAKE) CC="$(FUZZ_CC)" OPENMP=0 SAN=fuzzer-no-link,$(FUZZ_SAN) CFLAGS="-O1 -g" \
	  BUILD=$(FUZZ_DIR) LIB_OUT=$(FUZZ_DIR)/lib fuzz-bins

# Only meaningful inside the sub-make above (its BUILD, STATIC and flags).
fuzz-bins: $(FUZZ_BINS)
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) \
	  -fsanitize=fuzzer,$(FUZZ_SAN) $(LDLIBS)

# Each input once; a crash, a sanitizer report or an oracle finding fails.
fuzz-replay: fuzz
	@for t in $(FUZZ_TARGETS); do \
	  files=$$(ls tests/fuzz/corpus/$$t/* tests/fuzz/regressions/$$t/* 2>/dev/null); \
	  echo "== fuzz_$$t: replaying $$(echo $$files | wc -w) inputs"; \
	  $(FUZZ_DIR)/fuzz_$$t $$files >$(FUZZ_DIR)/replay-$$t.log 2>&1 \
	    || { tail -n 40 $(FUZZ_DIR)/replay-$$t.log; echo "FAIL fuzz_$$t replay"; exit 1; }; \
	done

# FUZZ_SECONDS=0 skips the fuzzing (libFuzzer would take -max_total_time=0 as no limit).
fuzz-run: fuzz
	@if [ "$(FUZZ_SECONDS)" = 0 ]; then echo "fuzz-run: FUZZ_SECONDS=0, skipped"; exit 0; fi; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
	    -max_len=$(FUZZ_MAX_LEN) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- $(FUZZ_FLAGS) \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t \
	    $$(ls -d tests/fuzz/regressions/$$t 2>/dev/null) >$(FUZZ_DIR)/fuzz-$$t.log 2>&1 \
	    || { tail -n 60 $(FUZZ_DIR)/fuzz-$$t.log; echo "FAIL fuzz_$$t (input in $(FUZZ_DIR)/artifacts)"; exit 1; }; \
	  grep -E 'DONE|stat::number_of_executed_units|stat::new_units_added' \
	    $(FUZZ_DIR)/fuzz-$$t.log; \
	done

GEN_CORPUS := $(BUILD)/fuzz/gen_corpus
$(GEN_CORPUS): tests/fuzz/gen_corpus.c tests/fuzz/fuzz_setup.h $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

fuzz-corpus: $(GEN_CORPUS)
	@for t in $(FUZZ_TARGETS); do mkdir -p tests/fuzz/corpus/$$t; rm -f tests/fuzz/corpus/$$t/seed-*.bin; done
	$(GEN_CORPUS) tests/fuzz/corpus

.PHONY: fuzz fuzz-bins fuzz-replay fuzz-run fuzz-corpus
