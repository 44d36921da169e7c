# The two commands of the README's quick start, and their helpers.
#   make demo    build, then show smtpkit at work against local servers
#   make check   build, then run every test (unit, and interop against real
#                servers started on loopback)
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps test-deps build demo check clean sanitize fuzz bench

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build test-deps
	@scripts/demo.sh $(BUILD)/smtpkit

check: build test-deps
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

sanitize: deps test-deps
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DSMTPKIT_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	@ctest --test-dir $(BUILD)-asan --output-on-failure -j $(JOBS)

FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# smtpkit side by side with msmtp, swaks, curl, smtplib and smtp-source;
# writes bench/results.md (a few minutes).
bench: build
	@bash bench/run.sh $(BUILD)/smtpkit

clean:
	rm -rf $(BUILD) $(BUILD)-asan build-fuzz
