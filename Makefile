# The two commands a new machine needs: `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-quick setup clean

demo:
	@scripts/setup.sh runtime
	$(BIN)/xnatfs demo $(MOUNTPOINT)

test:
	@scripts/setup.sh test
	$(BIN)/ruff check xnatfs tests bench
	$(BIN)/ruff format --check xnatfs tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench:
	@scripts/setup.sh test
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench

bench-quick:
	@scripts/setup.sh test
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
