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

# The paper's comparison as accuracy-cost Pareto fronts (bench/bench_mdd.c; long, not in
# CI). Needs `make data` for MDD-6, or any domains with --data DIR --domains a,b,...
#   make bench-mdd          the standard profile, every row, 3 seeds (about 100 minutes on
#                           2 cores): docs/RESULTS-table.md, docs/RESULTS.csv and the
#                           figures under docs/figures, which docs/RESULTS.md discusses
#   make bench-mdd-quick    --quick: fewer steps, seeds and rows (about 20 minutes), into
#                           $(BUILD)/mdd-quick/ (table.md, results.csv, figures/)
#   make bench-mdd MDD_ARGS="--search-steps 400 --train-steps 700 --seeds 2 --rows mpnas"
MDD_BENCH_BIN := $(BUILD)/bench/bench_mdd
MDD_ARGS ?= --search-steps 400 --train-steps 700 --batch 32 --seeds 3 --threads 2 --rows all
MDD_QUICK_ARGS ?= --quick --threads 2
MDD_QUICK_DIR := $(BUILD)/mdd-quick
$(MDD_BENCH_BIN): bench/bench_mdd.c bench/bench_data.h bench/bench_util.h bench/pareto_svg.h examples/idx.h examples/svg_figures.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) -Iinclude -Iexamples $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-mdd: $(MDD_BENCH_BIN)
	$(RUN) $(MDD_BENCH_BIN) $(MDD_ARGS) --out docs/RESULTS-table.md --csv docs/RESULTS.csv \
	  --figures docs/figures

bench-mdd-quick: $(MDD_BENCH_BIN)
	@mkdir -p $(MDD_QUICK_DIR)
	$(RUN) $(MDD_BENCH_BIN) $(MDD_QUICK_ARGS) --out $(MDD_QUICK_DIR)/table.md \
	  --csv $(MDD_QUICK_DIR)/results.csv --figures $(MDD_QUICK_DIR)/figures

.PHONY: bench-mdd bench-mdd-quick

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

# int8 against float inference kernels on the MBV2-9 layer shapes (docs/PERFORMANCE.md,
# "int8 kernels"): make bench-q8 BENCH_ARGS="--rounds 21 --only dw"
Q8_BENCH_BIN := $(BUILD)/bench/bench_q8_kernels
$(Q8_BENCH_BIN): bench/bench_q8_kernels.c bench/bench_util.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-q8: $(Q8_BENCH_BIN)
	$(RUN) $(Q8_BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench-q8
