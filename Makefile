.PHONY: demo test bench bench-count lint
demo:  ## simulated nodes on a pty serial line -> SQLite, live summary (Ctrl-C to stop)
	scripts/demo $(ARGS)
test:  ## install what the tests need, then ruff, mypy and pytest
	scripts/test $(ARGS)
bench: ## throughput and CPU figures (not a test)
	scripts/ensure-debs
	scripts/setup-venv
	.venv/bin/python benchmarks/ingest.py
	.venv/bin/python benchmarks/serial_read.py
	.venv/bin/python benchmarks/influx_sink.py
	.venv/bin/python benchmarks/mqtt_influx.py
	.venv/bin/python benchmarks/mqtt_formats.py
	.venv/bin/python benchmarks/rules_eval.py
bench-count: ## instructions per message end to end, under valgrind (stable between runs)
	scripts/ensure-debs
	scripts/setup-venv
	.venv/bin/python benchmarks/mqtt_instructions.py --threads
lint:
	scripts/setup-venv
	.venv/bin/ruff check gateway firmware_bridge rules dashboards tests benchmarks
	.venv/bin/mypy
