# liveflow: one non-recursive Makefile for every process, tool and test.

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wwrite-strings -Wno-format-nonliteral -Werror
CPPFLAGS += -Ilib -I$(GEN) -MMD -MP -D_DEFAULT_SOURCE -D_GNU_SOURCE
override CFLAGS += -std=c11 -pthread $(WARN)
LDFLAGS  += -pthread
BUILD    ?= build
ifeq ($(SAN),1)
BUILD    := build/san
override CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
export ASAN_OPTIONS := abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS := suppressions=$(CURDIR)/tests/fixtures/lsan.supp
endif
# FUZZ=1: clang with libFuzzer's coverage and ASan+UBSan, for `make fuzz` (build/fuzz).
ifeq ($(FUZZ),1)
BUILD    := build/fuzz
CC       := clang
override CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
LDFLAGS  += -fsanitize=address,undefined
endif
OBJ      := $(BUILD)/obj
GEN      := $(BUILD)/gen
BIN      := $(BUILD)/bin

# Every system library the shared lib may call; each program links only what it lists.
LIB_PKGS := rdkafka libmicrohttpd hiredis avro-c jansson libcjson libcrypto libmariadb libcurl
pkg_cflags = $(shell pkg-config --cflags $(1))
pkg_libs   = $(shell pkg-config --libs $(1))

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRCS)) $(OBJ)/gen/schemas.o
LIB_A    := $(OBJ)/libliveflow.a

# Program table: name, source folder, pkg-config packages.
receiver_DIR    := callback-receiver
receiver_PKGS   := rdkafka libmicrohttpd hiredis avro-c jansson libcjson libcrypto libmariadb
consumer_DIR    := consumers
consumer_PKGS   := rdkafka libmicrohttpd hiredis avro-c jansson libcrypto libmariadb libcurl
settlement_DIR  := settlement-worker
settlement_PKGS := rdkafka libmicrohttpd hiredis avro-c jansson libcrypto libmariadb
stats_DIR       := stats-worker
stats_PKGS      := rdkafka libmicrohttpd hiredis avro-c jansson libcrypto libmariadb
devbroker_DIR   := ops/devbroker
devbroker_PKGS  := rdkafka
migrate_DIR     := ops/migrate
migrate_PKGS    := libmariadb
ctl_DIR         := ops/ctl
ctl_PKGS        := rdkafka hiredis avro-c jansson libcrypto libmariadb
sim_DIR         := ops/sim
sim_PKGS        := hiredis jansson libcrypto libmariadb libcurl

PROGRAMS := receiver consumer devbroker migrate ctl sim
PROGRAMS += $(if $(wildcard settlement-worker/*.c),settlement)
PROGRAMS += $(if $(wildcard stats-worker/*.c),stats)
BINS     := $(foreach p,$(PROGRAMS),$(BIN)/liveflow-$(p))

prog_srcs = $(wildcard $($(1)_DIR)/*.c)
prog_objs = $(patsubst %.c,$(OBJ)/%.o,$(call prog_srcs,$(1)))
# A program's modules without its main.c: what its tests link.
prog_mods = $(filter-out $(OBJ)/$($(1)_DIR)/main.o,$(call prog_objs,$(1)))

.PHONY: all deps run demo stop test tests-build bench fuzz format clean check-config
all: $(BINS)


# The current schemas and every released one kept under schemas/history/ (decoding old records).
SCHEMA_FILES := $(sort $(wildcard schemas/*.avsc schemas/history/*.avsc))
$(GEN)/schemas.c: $(SCHEMA_FILES) ops/embed-schemas.sh
	@mkdir -p $(@D)
	sh ops/embed-schemas.sh $(SCHEMA_FILES) > $@

# --version: `git describe` of the checkout (a fresh clone without tags gives the commit's short
# hash; outside git, "unknown"). The header changes only when the description does.
LIVEFLOW_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LIVEFLOW_COMMIT  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
VERSION_H := $(GEN)/liveflow_version.h
_ := $(shell mkdir -p $(GEN) && \
	printf '\043define LIVEFLOW_VERSION "%s"\n\043define LIVEFLOW_COMMIT "%s"\n' \
	'$(LIVEFLOW_VERSION)' '$(LIVEFLOW_COMMIT)' >$(VERSION_H).tmp && \
	{ cmp -s $(VERSION_H).tmp $(VERSION_H) || mv $(VERSION_H).tmp $(VERSION_H); }; \
	rm -f $(VERSION_H).tmp)
$(OBJ)/lib/version.o: $(VERSION_H)

$(OBJ)/gen/schemas.o: $(GEN)/schemas.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(OBJ)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(call pkg_cflags,$(LIB_PKGS)) $(CFLAGS) -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

define PROGRAM_RULES
$(OBJ)/$($(1)_DIR)/%.o: $($(1)_DIR)/%.c
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS) -I$($(1)_DIR) $$(call pkg_cflags,$($(1)_PKGS)) $$(CFLAGS) -c -o $$@ $$<

$(BIN)/liveflow-$(1): $(call prog_objs,$(1)) $(LIB_A)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(call pkg_libs,$($(1)_PKGS))
endef
$(foreach p,$(PROGRAMS),$(eval $(call PROGRAM_RULES,$(p))))

# Tests mirror the tree: tests/<folder>/test_<module>.c links the shared lib and
# the modules of the program that lives in <folder>. The end-to-end suites run last: the
# simulated evening leaves tens of thousands of records on the shared topics, which a
# worker suite that reads its topics from the start would otherwise wade through first.
TEST_SRCS := $(wildcard tests/lib/test_*.c) \
             $(foreach p,$(PROGRAMS),$(wildcard tests/$($(p)_DIR)/test_*.c)) \
             $(wildcard tests/ops/test_*.c) \
             $(wildcard tests/e2e/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/test/%,$(TEST_SRCS))
TEST_SUPPORT_OBJS := $(patsubst tests/%.c,$(OBJ)/tests/%.o,$(wildcard tests/support*.c))
test_prog  = $(firstword $(foreach p,$(PROGRAMS),$(if $(filter tests/$($(p)_DIR)/%,$(1)),$(p))))
# A long test may split along its seams: tests/<folder>/test_<name>.c links the parts in
# tests/<folder>/<name>/ too.
test_parts = $(patsubst %.c,$(OBJ)/%.o,$(wildcard $(dir $(1))$(patsubst test_%.c,%,$(notdir $(1)))/*.c))

# Every program and every test binary, without running anything (what a landing builds).
# After TEST_BINS: a prerequisite list is expanded where the rule is read.
tests-build: all $(TEST_BINS)

# A test of tests/<folder>/ also sees <folder>'s headers (its program's modules); so does a
# part in tests/<folder>/<name>/.
$(OBJ)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -I$(patsubst tests/%/,%,$(dir $<)) \
		-I$(patsubst tests/%/,%,$(dir $(patsubst %/,%,$(dir $<)))) \
		$(call pkg_cflags,$(LIB_PKGS) criterion) $(CFLAGS) -c -o $@ $<

define TEST_RULES
$(BUILD)/test/$(patsubst tests/%.c,%,$(1)): $(OBJ)/$(patsubst %.c,%.o,$(1)) $(call test_parts,$(1)) \
		$(TEST_SUPPORT_OBJS) \
		$(if $(call test_prog,$(1)),$(call prog_mods,$(call test_prog,$(1)))) $(LIB_A)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(call pkg_libs,$(LIB_PKGS) criterion)
endef
$(foreach t,$(TEST_SRCS),$(eval $(call TEST_RULES,$(t))))

$(OBJ)/tests/support%.o: tests/support%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests $(call pkg_cflags,$(LIB_PKGS) criterion) $(CFLAGS) -c -o $@ $<

# ---------------------------------------------------------------- commands

# Compile on every core unless -j was given. The commands install what is missing first (deps)
# and only then build, in a second make, so nothing is compiled before its headers are there.
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif

# ops/systemd/liveflow.env.example from lib/settings.c's table (the deploy test writes it).
.PHONY: env-example
env-example: $(BUILD)/test/ops/test_deploy
	@LIVEFLOW_TEST_BUILD=$(CURDIR)/$(BUILD) $< --filter 'deploy/env_example_is_the_settings_table' >/dev/null 2>&1 || true
	@cp $(BUILD)/liveflow.env.example ops/systemd/liveflow.env.example
	@echo "ops/systemd/liveflow.env.example written from the settings table"

deps:
	@sh ops/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@sh ops/stack.sh start $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory all
	@sh ops/demo.sh $(BUILD)

stop:
	@sh ops/stack.sh stop

test: deps
	@$(MAKE) --no-print-directory tests-build
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BINS)

bench: deps
	@$(MAKE) --no-print-directory all bench-tools
	@BUILD=$(BUILD) sh ops/bench/run.sh

# make bench's helpers (ops/bench/): the no-op HTTP ceiling and the Kafka record counter.
.PHONY: bench-tools
bench-tools: $(BIN)/liveflow-bench-noop $(BIN)/liveflow-bench-count $(BIN)/liveflow-bench-audience \
	$(BIN)/liveflow-bench-mapcost
$(BIN)/liveflow-bench-noop: ops/bench/noop_server.c
	@mkdir -p $(@D)
	$(CC) $(filter-out -MMD -MP,$(CPPFLAGS)) $(call pkg_cflags,libmicrohttpd) $(CFLAGS) $(LDFLAGS) -o $@ $< $(call pkg_libs,libmicrohttpd)
$(BIN)/liveflow-bench-count: ops/bench/count_topic.c
	@mkdir -p $(@D)
	$(CC) $(filter-out -MMD -MP,$(CPPFLAGS)) $(call pkg_cflags,rdkafka) $(CFLAGS) $(LDFLAGS) -o $@ $< $(call pkg_libs,rdkafka)
$(BIN)/liveflow-bench-audience: ops/bench/audience_load.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(filter-out -MMD -MP,$(CPPFLAGS)) $(call pkg_cflags,$(LIB_PKGS)) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(call pkg_libs,$(LIB_PKGS))

# The receiver's parse, verify, map and encode of one Tencent callback, N times (callgrind).
$(BIN)/liveflow-bench-mapcost: ops/bench/map_cost.c $(call prog_mods,receiver) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(filter-out -MMD -MP,$(CPPFLAGS)) -I$(receiver_DIR) $(call pkg_cflags,$(LIB_PKGS)) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(call pkg_libs,$(LIB_PKGS))

# Fuzzing: each tests/fuzz/fuzz_<name>.c is a libFuzzer target, run for FUZZ_SECONDS on
# the seeds in tests/fuzz/corpus/<name>/ (new inputs go to build/fuzz/corpus/, not the tree).
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-targets
	@sh tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

.PHONY: fuzz-targets
fuzz-targets: $(patsubst %,$(BIN)/%,$(FUZZ_TARGETS))

$(OBJ)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -I$(receiver_DIR) $(call pkg_cflags,$(LIB_PKGS)) $(CFLAGS) -c -o $@ $<

$(BIN)/fuzz_%: $(OBJ)/tests/fuzz/fuzz_%.o $(call prog_mods,receiver) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(call pkg_libs,$(LIB_PKGS))

format:
	@clang-format --dry-run -Werror $(LIB_SRCS) $(wildcard lib/*.h */*.c */*.h ops/*/*.c tests/*/*.c \
		tests/*/*/*.c tests/*/*/*.h)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
