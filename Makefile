# The two commands a newcomer needs (see README.md), plus stack controls.
.PHONY: demo test up down status
.PHONY: sim
SCENARIO ?= calm
DURATION ?=
SIM_VENUE = --kafka 127.0.0.1:$${KAFKA_PORT:-19092} --redis redis://127.0.0.1:$${REDIS_PORT:-16379}/0

demo: ## bring up the whole local stack and run a short demo through the public API
	deploy/local/stack.sh up
	.venv/bin/python -m sim.demo
	.venv/bin/python -m sim.run --scenario sim/scenarios/calm.toml --duration 30 $(SIM_VENUE)

test: ## install what the tests need and run every test
	deploy/local/test.sh

up: ## start the local stack (Kafka, Redis, topics, five services)
	deploy/local/stack.sh up

down: ## stop everything the stack started
	deploy/local/stack.sh down

status:
	deploy/local/stack.sh status

sim: ## run a simulated market on the running stack: make sim SCENARIO=crash [DURATION=600]
	.venv/bin/python -m sim.run --scenario sim/scenarios/$(SCENARIO).toml \
		$(if $(DURATION),--duration $(DURATION)) $(SIM_VENUE)
