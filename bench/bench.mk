# bench/bench.mk - `make bench`: build bench/bench_kernels.c against the static library
# and run it (depthwise and pointwise through the op layer, 1 and 2 threads).
#   make bench BENCH_ARGS="--threads 1 --reps 21 --only dw7"
# Side by side with PyTorch (optional, Debian python3-torch):
#   /usr/bin/python3 bench/bench_torch.py --compare --bin $(BUILD)/bench/bench_kernels
BENCH_BIN  := $(BUILD)/bench/bench_kernels
BENCH_ARGS ?=

$(BENCH_BIN): bench/bench_kernels.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-build: $(BENCH_BIN)

bench: $(BENCH_BIN)
	$(RUN) $(BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench bench-build

# Batch norm and activation kernels (the elementwise part of a training step).
MISC_BENCH_BIN := $(BUILD)/bench/bench_misc
$(MISC_BENCH_BIN): bench/bench_misc.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BASEFLAGS) $(TEST_CPPFLAGS) $< -o $@ $(STATIC) $(OMPLINK) $(SANLINK) $(LDLIBS)

bench-misc: $(MISC_BENCH_BIN)
	$(RUN) $(MISC_BENCH_BIN) $(BENCH_ARGS)

.PHONY: bench-misc
