# The one task runner: README, CI and hooks call these targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp
# pyproject.toml extras installed into the virtualenv.
EXTRAS := dev,test,lint

.PHONY: demo test test-rust test-python lint develop develop-release bench bench-cold bench-small-inner bench-spaced-reads bench-other-cases bench-codecs fuzz clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Python dependencies (build tool, test peers, linters) follow pyproject.toml's extras;
# reinstalled when it changes.
$(STAMP): pyproject.toml tools/requirements.py | $(BIN)/python
	$(BIN)/python tools/requirements.py $(EXTRAS) > $(VENV)/requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/requirements.txt
	touch $(STAMP)

# A debug build of the engine (fast to compile) for the test loop, installed editable.
develop: $(STAMP)
	$(BIN)/maturin develop --quiet > $(VENV)/build.log 2>&1 || (cat $(VENV)/build.log; exit 1)
	$(BIN)/python -c "import oxzarr._core"

# A release build (lto, one codegen unit) for demos and benchmarks.
develop-release: $(STAMP)
	$(BIN)/maturin develop --release --quiet > $(VENV)/build.log 2>&1 || (cat $(VENV)/build.log; exit 1)
	$(BIN)/python -c "import oxzarr._core"

demo: develop-release
	$(BIN)/python benches/demo.py

test-rust:
	cargo test --workspace --exclude oxzarr-python --quiet

test-python: develop
	$(BIN)/python -m pytest -q

test: test-rust test-python

lint: $(STAMP)
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all -- --check
	cargo fmt --manifest-path rust/fuzz/Cargo.toml -- --check
	cargo clippy --manifest-path rust/fuzz/Cargo.toml --all-targets -- -D warnings
	$(BIN)/ruff check python tests benches tools
	$(BIN)/ruff format --check python tests benches tools
	$(BIN)/mypy

# Coverage-guided fuzzing of the engine under AddressSanitizer (rust/fuzz; not part of
# `make test`), each target FUZZ_SECONDS long: damaged chunks and shards read and written every
# way (array_read), sequences of writes checked against a model (array_write), codec chains
# decoding damaged bytes whole and in part (codec_chain), metadata documents (metadata),
# hierarchies of groups, consolidated metadata and arrays (hierarchy) and zip files read as
# stores (zip_store), the last three seeded from the shared conformance corpus. Optimised,
# with overflow checks (-a): a size that wraps around is a bug even where it does not crash.
# `make lint` compiles the targets (clippy), so that they keep up with the engine. cargo-fuzz
# passes sanitizer flags only nightly compilers take; RUSTC_BOOTSTRAP lets the stable one
# accept them. Allocations the engine makes fallibly must be allowed to fail rather than stop
# the run. array_read, array_write and zip_store write their files under TMPDIR: a tmpfs
# (/dev/shm) there makes them several times faster.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := array_read array_write codec_chain metadata hierarchy zip_store
fuzz:
	cargo install --locked --quiet cargo-fuzz
	$(PY) tools/fuzz_seeds.py ../shared/conformance rust/fuzz/corpus
	for t in $(FUZZ_TARGETS); do \
		mkdir -p rust/fuzz/corpus/$$t && \
		len=8192 && if [ $$t = hierarchy ]; then len=65536; fi && \
		if [ $$t = zip_store ]; then len=131072; fi && \
		ASAN_OPTIONS=allocator_may_return_null=1 RUSTC_BOOTSTRAP=1 \
		cargo fuzz run -O -a --fuzz-dir rust/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) \
			-max_len=$$len -timeout=20 -rss_limit_mb=4096 || exit 1; \
	done

# The side-by-side benchmark against every peer (release build), with the sharding issue's
# gate, then the table and plot of benches/RESULTS.md.
bench: develop-release
	$(BIN)/python tools/requirements.py bench > $(VENV)/bench-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/bench-requirements.txt
	$(BIN)/python ../shared/bench/peers.py --impl zarrs,tensorstore,zarrista,oxzarr \
		--out benches/peers.json --gate 1.5 || true
	$(BIN)/python benches/results.py benches/peers.json
	$(BIN)/python benches/plot.py benches/peers.json benches/results.png

# Full reads from a cold page cache, every peer (drops the caches: needs root).
bench-cold: develop-release
	$(BIN)/python tools/requirements.py bench > $(VENV)/bench-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/bench-requirements.txt
	$(BIN)/python benches/cold.py --out benches/cold.json

# Sharded arrays of small inner chunks, every peer (release build).
bench-small-inner: develop-release
	$(BIN)/python tools/requirements.py bench > $(VENV)/bench-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/bench-requirements.txt
	$(BIN)/python benches/small_inner.py --out benches/small_inner.json

# Full reads that are the first of a process or come seconds after the last (every peer).
bench-spaced-reads: develop-release
	$(BIN)/python tools/requirements.py bench > $(VENV)/bench-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/bench-requirements.txt
	$(BIN)/python benches/spaced_reads.py --out benches/spaced_reads.json

# Other codecs, data types, shapes and selections than the gate's, every peer (release build).
bench-other-cases: develop-release
	$(BIN)/python tools/requirements.py bench > $(VENV)/bench-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/bench-requirements.txt
	$(BIN)/python benches/other_cases.py --out benches/other_cases.json

# Criterion benchmarks of each codec alone.
bench-codecs:
	cargo bench -p oxzarr-core --bench codecs -- --warm-up-time 1 --measurement-time 3

clean:
	rm -rf $(VENV) target
