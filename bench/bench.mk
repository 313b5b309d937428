# bench/bench.mk - `make bench`: build bench/bench_kernels.c against the static library
# and run it (depthwise and pointwise through the op layer, 1 and 2 threads).
#   make bench BENCH_ARGS="--threads 1 --reps 21 --only dw7"
# Side by side with PyTorch (optional, Debian python3-torch):
#   /usr/bin/python3 bench/bench_torch.py --compare --bin $(BUILD)/bench/bench_kernels
BENCH_BIN  := $(BUILD)/bench/bench_kernels
BENCH_ARGS ?=

$(BENCH_BIN): bench/bench_kernels.c bench/bench_util.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-build: $(BENCH_BIN)

bench: $(BENCH_BIN)
	$(RUN) $(BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench bench-build

# Batch norm and activation kernels (the elementwise part of a training step).
MISC_BENCH_BIN := $(BUILD)/bench/bench_misc
$(MISC_BENCH_BIN): bench/bench_misc.c bench/bench_util.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-misc: $(MISC_BENCH_BIN)
	$(RUN) $(MISC_BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench-misc

# One search step of the 32 px preset on the synthetic domains, split into its training
# and validation parts (docs/PERFORMANCE.md, "Search step").
#   make bench-search BENCH_ARGS="--steps 20 --threads 1,2"
SEARCH_BENCH_BIN := $(BUILD)/bench/bench_search
$(SEARCH_BENCH_BIN): bench/bench_search.c bench/bench_util.h examples/synthetic.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-search: $(SEARCH_BENCH_BIN)
	$(RUN) $(SEARCH_BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench-search

# The paper's comparison on MDD-6 (long: about an hour per 1000 training steps of all
# rows on 2 cores; not in CI). Needs `make data`. Writes docs/RESULTS-table.md and the
# figures under docs/figures; docs/RESULTS.md quotes and discusses them.
#   make bench-mdd MDD_ARGS="--search-steps 600 --train-steps 1500 --seeds 2"
MDD_BENCH_BIN := $(BUILD)/bench/bench_mdd
MDD_ARGS ?= --search-steps 600 --train-steps 1500 --seeds 2 --threads 2
$(MDD_BENCH_BIN): bench/bench_mdd.c examples/idx.h examples/svg_figures.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) -Iinclude -Iexamples $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-mdd: $(MDD_BENCH_BIN)
	$(RUN) $(MDD_BENCH_BIN) $(MDD_ARGS) --out docs/RESULTS-table.md --figures docs/figures

.PHONY: bench-mdd

# End-to-end MBV2-9 (shared/design/BENCHMARKS.md): training img/s at batch 64, eval img/s,
# batch-1 latency, through the public model API. Side by side with PyTorch (optional):
#   /usr/bin/python3 bench/bench_train_torch_compare.py --bin $(BUILD)/bench/bench_train
#   make bench-train BENCH_ARGS="--threads 1 --rounds 5 --steps 10 --json"
TRAIN_BENCH_BIN := $(BUILD)/bench/bench_train
$(TRAIN_BENCH_BIN): bench/bench_train.c bench/bench_util.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-train: $(TRAIN_BENCH_BIN)
	$(RUN) $(TRAIN_BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench-train
