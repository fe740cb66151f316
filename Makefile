.PHONY: run setup test check bench fmt
run:            ## set up everything, migrate, load the demo city, serve on :8000
	./scripts/run.sh
setup:          ## install what is missing (uv deps, PostgreSQL + PostGIS, Chromium)
	./scripts/setup.sh --with-browser
test:           ## every check and every test (what CI runs)
	./scripts/test.sh
check: test
bench:          ## benchmarks in bench/, printing medians, p95 and ratios against their peers
	./scripts/setup.sh --with-pgrouting
	uv run python -m bench.http_api
	uv run python -m bench.routing
	uv run python -m bench.roads_gis
	uv run python -m bench.tiles
	uv run python -m bench.recommend
	uv run python -m bench.plan
	uv run python -m bench.supplies
	uv run python -m bench.realtime
	uv run python -m bench.realtime --clients 301 --phones 300 --batch 2 --out bench/results/realtime_phones.json
	uv run python -m bench.alerts
	uv run python -m bench.audit_writes
	uv run python -m bench.login_flood
	uv run python -m bench.places
	uv run python -m bench.kpis
	uv run python -m bench.screen
	uv run python -m bench.drills
	uv run python -m bench.avl
	uv run python -m bench.gis_import
	uv run python -m bench.backup
	uv run python -m bench.failover
fmt:            ## format and fix lint
	uv run ruff format . && uv run ruff check --fix .
