# Shortcuts; the README's commands work without make.
.PHONY: demo test bench lint
demo:
	uv run droughtwatch demo
test:
	uv run pytest
bench:
	uv sync --compile-bytecode
	uv run python bench/run.py
lint:
	uv run ruff check . && uv run ruff format --check .
