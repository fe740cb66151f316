.PHONY: run setup test check bench fmt
run:            ## set up everything, migrate, load the demo city, serve on :8000
	./scripts/run.sh
setup:          ## install what is missing (uv deps, PostgreSQL + PostGIS, Chromium)
	./scripts/setup.sh --with-browser
test:           ## every check and every test (what CI runs)
	./scripts/test.sh
check: test
bench:          ## benchmarks in bench/, printing medians and p95
	./scripts/setup.sh --with-pgrouting
	uv run python -m bench.http_api
	uv run python -m bench.routing
	if [ -f bench/tiles.py ]; then uv run python -m bench.tiles; fi
fmt:            ## format and fix lint
	uv run ruff format . && uv run ruff check --fix .
