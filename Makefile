# conversa - build, run, test and bench.
#
#   make            build build/conversa
#   make run        set up everything and serve the demo on port 5000
#   make stop       stop what `make run` started
#   make web        build the browser app (web/ -> build/release/web, hashed and precompressed)
#   make test       build, start throw-away servers, run every test
#   make test SANITIZE=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-faults       faults under load: PostgreSQL/Redis stopped, a process killed, a stall
#   make soak       30 min of steady mixed load on one server; fails if its RSS or fds keep
#                   growing (SOAK_SECONDS=120 for a short one); bench/results/soak-*
#   make soak-valgrind   a short light mixed load with `conversa serve` under valgrind memcheck
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (60) each (fuzz/README.md)
#   make bench      wrk against conversa and nginx, then the API on data at scale;
#                   tables + bench/results/*.json
#   make format     clang-format the whole tree

PKGS      := libh2o-evloop libpq hiredis libsodium jansson libcurl libsystemd
CC        ?= cc
SANITIZE  ?= 0
PORT      ?= 5000
DATA_DIR  ?= .data

ifeq ($(SANITIZE),1)
BUILD     := build/asan
OPT       := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
BUILD     := build/release
OPT       := -O2 -g
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS    += $(OPT) -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers \
             -pthread -DH2O_USE_LIBUV=0 -Isrc $(PKG_CFLAGS) -MMD -MP
LDFLAGS   += $(OPT) -pthread
LDLIBS    += $(PKG_LIBS) -lssl -lcrypto -lm

SRCS      := $(shell find src -name '*.c' | sort)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/sql_files.o
BIN       := $(BUILD)/conversa
SQL       := $(sort $(wildcard migrations/*.sql) seed/demo.sql)

# The browser app: web/ as written, $(BUILD)/web as served (hashed, precompressed).
WEB_SRCS  := $(wildcard web/*)
WEB       := $(BUILD)/web/index.html

TEST_SRCS := $(sort $(wildcard tests/unit_*.c tests/it_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(BUILD)/tests/harness.o

.PHONY: all web run stop test test-faults soak soak-valgrind bench clean format deps-build deps-test
.DEFAULT_GOAL := all
.SECONDARY:

all: deps-build $(BIN) $(WEB)
	@ln -sf $(BIN) conversa 2>/dev/null || true

# Install what is missing (as root) or print the exact apt-get line and stop.
deps-build:
	@scripts/deps.sh --install build

deps-test:
	@scripts/deps.sh --install build servers test

$(BUILD)/%.o: %.c | deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/sql_files.c: $(SQL) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $@

$(BUILD)/gen/sql_files.o: $(BUILD)/gen/sql_files.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BIN): $(BUILD)/src/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# conversa serves it from "web" beside its executable (WEB_ROOT overrides).
web: $(WEB)
$(WEB): $(WEB_SRCS) scripts/web-build.sh | deps-build
	scripts/web-build.sh web $(BUILD)/web

# ---- tests ----

$(BUILD)/tests/%.o: tests/%.c | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags criterion) -Itests -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON) $(LIB_OBJS)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs criterion libcurl jansson) -o $@

# playwright-core for the browser tests, at the version the lock file pins
BROWSER_DEPS := tests/browser/node_modules/.package-lock.json
$(BROWSER_DEPS): tests/browser/package.json tests/browser/package-lock.json | deps-test
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: $(BIN) $(WEB) $(BROWSER_DEPS) $(TEST_BINS)
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run.sh $(TEST_BINS)

# Faults under load (tests/faults.c): PostgreSQL and Redis stopped, a process killed,
# PostgreSQL stalled; each with its time to recover.
test-faults: $(BIN) $(BUILD)/tests/faults
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run.sh $(BUILD)/tests/faults

# ---- bench tools ----

$(BUILD)/bench/%.o: bench/%.c | deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/bench/webhook-gen: $(BUILD)/bench/webhook_gen.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench/stall-probe: $(BUILD)/bench/stall_probe.o
	$(CC) $(LDFLAGS) $^ -o $@

# A steady mixed load for SOAK_SECONDS (default 1800); fails if RSS or fds keep growing.
soak: all $(BUILD)/bench/webhook-gen
	@scripts/deps.sh --install servers test bench
	CONVERSA_BIN=$(BIN) WEBHOOK_GEN=$(BUILD)/bench/webhook-gen bench/soak.sh

# The same, short and light (SOAK_SECONDS, default 30), with `conversa serve` under valgrind.
soak-valgrind: all $(BUILD)/bench/webhook-gen
	@scripts/deps.sh --install servers test bench
	CONVERSA_BIN=$(BIN) WEBHOOK_GEN=$(BUILD)/bench/webhook-gen bench/soak.sh --valgrind

# ---- running the demo ----

run: all
	@scripts/deps.sh --install servers
	@scripts/run-demo.sh $(BIN) $(DATA_DIR) $(PORT)

# conversa first (it finishes its requests), then the servers it uses.
stop:
	@if [ -f $(DATA_DIR)/conversa.pid ]; then \
		pid=$$(cat $(DATA_DIR)/conversa.pid); kill $$pid 2>/dev/null || true; \
		for i in $$(seq 1 150); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
		rm -f $(DATA_DIR)/conversa.pid; echo "conversa: stopped"; fi
	@if [ -f $(DATA_DIR)/fake-meta.pid ]; then kill $$(cat $(DATA_DIR)/fake-meta.pid) 2>/dev/null || true; \
		rm -f $(DATA_DIR)/fake-meta.pid; echo "fake-meta: stopped"; fi
	@scripts/stack.sh stop $(DATA_DIR) || true

bench: all $(BUILD)/bench/webhook-gen $(BUILD)/bench/stall-probe
	@scripts/deps.sh --install servers bench
	CONVERSA_BIN=$(BIN) bench/run.sh
	CONVERSA_BIN=$(BIN) bench/api.sh
	CONVERSA_BIN=$(BIN) STALL_PROBE=$(BUILD)/bench/stall-probe bench/dashboard.sh
	CONVERSA_BIN=$(BIN) WEBHOOK_GEN=$(BUILD)/bench/webhook-gen STALL_PROBE=$(BUILD)/bench/stall-probe bench/webhooks.sh
	CONVERSA_BIN=$(BIN) STALL_PROBE=$(BUILD)/bench/stall-probe bench/campaign.sh

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.h src/*.h tests/*.c tests/*.h)

clean:
	rm -rf build conversa

-include $(shell find build -name '*.d' 2>/dev/null)
include fuzz/fuzz.mk
