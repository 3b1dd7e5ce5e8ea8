# The one task runner: README, CI and hooks call these targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp

.PHONY: demo test test-rust test-python lint develop develop-release bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Python dependencies (test peers and linters) follow pyproject.toml; reinstalled when it changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "maturin>=1.7,<2" "pytest>=8" "hypothesis>=6.100" \
		"zarr==3.1.6" "numcodecs>=0.16,<0.17" "tensorstore==0.1.86" "ruff==0.17.6" "mypy==2.4.1" numpy
	touch $(STAMP)

# A debug build of the engine (fast to compile) for the test loop.
develop: $(STAMP)
	$(BIN)/maturin develop --quiet --skip-install 2>&1 | grep -v '^📦\|^🔗\|^🐍\|^⚠' || true
	$(BIN)/python -c "import oxzarr._core"

# A release build (lto, one codegen unit) for demos and benchmarks.
develop-release: $(STAMP)
	$(BIN)/maturin develop --release --quiet --skip-install
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
	$(BIN)/ruff check python tests benches
	$(BIN)/ruff format --check python tests benches
	$(BIN)/mypy

bench: develop-release
	$(BIN)/pip install --quiet "zarrs==0.2.3" "zarrista==0.1.0"
	$(BIN)/python ../shared/bench/peers.py --cases raw_c64,zstd_c64,zstd_c32,blosc_lz4_c64 \
		--impl zarrs,tensorstore,zarrista,oxzarr --out benches/peers.json

clean:
	rm -rf $(VENV) target
