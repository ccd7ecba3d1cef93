# Fuzzing with libFuzzer: one target per parser of outside bytes (see fuzz/README.md).
# Included from the top Makefile, whose PKGS, CFLAGS, OPT, LDLIBS and LIB_SRCS it uses.
#
#   make fuzz               every target for FUZZ_SECONDS (60) each; fails on any crash
#   make fuzz-smoke         the same for 10 s each (CI)
#   make fuzz FUZZ_TARGETS="phone cursor" FUZZ_SECONDS=300
#
# Everything is built with clang into build/fuzz/, never mixed with the gcc objects of
# build/release or build/asan: project sources with coverage instrumentation
# (-fsanitize=fuzzer-no-link) and ASan + UBSan, UB fatal so that libFuzzer sees it.

.PHONY: fuzz fuzz-smoke deps-fuzz

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NICE    ?= 19
FUZZ_TARGETS ?= webhook body query phone cursor secret
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The project's flags without its optimisation and sanitizer choice (OPT), then ours.
FUZZ_CFLAGS   = $(filter-out $(OPT),$(CFLAGS)) -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_LDFLAGS := -g -pthread -fsanitize=fuzzer $(FUZZ_SAN)

# The project as an archive, so each target links only what it reaches. src/main.c has
# main() (libFuzzer brings its own); reply.c, db.c and api/cache.c are replaced by
# the recorders of fuzz/fake.c, so handlers run without a server behind them.
FUZZ_FAKED    := src/http/reply.c src/api/db.c src/api/cache.c
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out $(FUZZ_FAKED),$(LIB_SRCS))) $(FUZZ_BUILD)/gen/sql_files.o
FUZZ_LIB      := $(FUZZ_BUILD)/libconversa.a
FUZZ_BINS     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

deps-fuzz:
	@scripts/deps.sh --install build test

$(FUZZ_BUILD)/src/%.o: src/%.c | deps-fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz/%.o: fuzz/%.c | deps-fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Ifuzz -c $< -o $@

$(FUZZ_BUILD)/gen/sql_files.c: $(SQL) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $@

$(FUZZ_BUILD)/gen/sql_files.o: $(FUZZ_BUILD)/gen/sql_files.c | deps-fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_BUILD)/fuzz/fake.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) $^ $(LDLIBS) -o $@

fuzz: $(FUZZ_BINS)
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_NICE=$(FUZZ_NICE) fuzz/run.sh $(FUZZ_TARGETS)

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
