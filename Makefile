# streamproc: PostgreSQL 15 extension that turns Postgres into a stream processor.
#
# The extension itself builds with PGXS.  The tools, benchmarks and test
# suites have their own targets below; `make test` is what README.md and
# .ci/run use, `make sanitize-test` runs the suites under ASan and UBSan,
# `make fuzz` and `make fuzz-run` build and run the fuzz targets of fuzz/,
# `make demo` starts the demo stack.

MODULE_big = streamproc
OBJS = \
	src/aggregates.o \
	src/batch.o \
	src/catalog.o \
	src/changes.o \
	src/checkpoint.o \
	src/combine.o \
	src/dedup.o \
	src/errors.o \
	src/feed.o \
	src/groupkey.o \
	src/groupmap.o \
	src/guc.o \
	src/kafka.o \
	src/launcher.o \
	src/msgscan.o \
	src/packed.o \
	src/parse.o \
	src/positions.o \
	src/restore.o \
	src/retract.o \
	src/shmem.o \
	src/sink.o \
	src/source.o \
	src/state.o \
	src/statestore.o \
	src/stream.o \
	src/streamproc.o \
	src/view.o \
	src/viewscan.o \
	src/viewstats.o \
	src/window_worker.o \
	src/windows.o \
	src/worker.o

EXTENSION = streamproc
DATA = streamproc--0.1.sql streamproc--0.1--0.2.sql streamproc--0.2--0.3.sql streamproc--0.3--0.4.sql streamproc--0.4--0.5.sql streamproc--0.5--0.6.sql streamproc--0.6--0.7.sql
PGFILEDESC = "streamproc - stream processing inside PostgreSQL"

PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags rdkafka)
# Warnings are errors: the tree must build warning-free on PG 15's flags.
# Override with `make PG_WERROR=` when experimenting.
PG_WERROR ?= -Werror
PG_CFLAGS = $(PG_WERROR)
SHLIB_LINK = $(shell pkg-config --libs rdkafka)

# The suites are run by scripts/run-tests (see `make test`), which needs a
# preloading temporary instance; PGXS's own installcheck is not used.
EXTRA_CLEAN = output tmp_check results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: every object depends on every header
# of the extension, so that changing a shared structure (state.h) rebuilds
# all of its users.
$(OBJS): $(wildcard src/*.h)

.PHONY: tools tools-clean test sanitize-test fuzz fuzz-run fuzz-clean demo \
	demo-stop bench format format-check deps

tools:
	$(MAKE) -C tools/devbroker
	$(MAKE) -C tools/loadgen
	$(MAKE) -C bench

tools-clean:
	$(MAKE) -C tools/devbroker clean
	$(MAKE) -C tools/loadgen clean
	$(MAKE) -C bench clean

clean: tools-clean fuzz-clean

deps:
	scripts/install-deps

# Installs dependencies, builds, installs, runs every suite and prints
# "N passed, M failed".
test:
	scripts/run-tests

# The same suites against a streamproc.so built with AddressSanitizer and
# UndefinedBehaviorSanitizer; any sanitizer report fails the run.  Prints
# "sanitize: N passed, M failed".
sanitize-test:
	scripts/run-tests --sanitize

# libFuzzer targets (clang) for the pure-C decoders of untrusted bytes:
# `make fuzz` builds them into fuzz/build/, `make fuzz-run` runs each for
# FUZZ_SECONDS and prints "fuzz: N passed, M failed".
FUZZ_SECONDS ?= 60

fuzz:
	$(MAKE) -C fuzz PG_CONFIG=$(PG_CONFIG)

fuzz-run:
	$(MAKE) -C fuzz PG_CONFIG=$(PG_CONFIG) run FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-clean:
	$(MAKE) -C fuzz clean

demo:
	scripts/demo start

demo-stop:
	scripts/demo stop

bench: all tools
	bench/run

# C sources formatted with the repository's .clang-format.
FORMAT_FILES = $(wildcard src/*.c src/*.h tools/*/*.c tools/*/*.h bench/*.c fuzz/*.c fuzz/*.h)

format:
	clang-format -i --style=file $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror --style=file $(FORMAT_FILES)
