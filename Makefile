# The two commands a newcomer needs (see README.md), plus stack controls.
.PHONY: demo test up down status

demo: ## bring up the whole local stack and run a short demo through the public API
	deploy/local/stack.sh up
	.venv/bin/python -m sim.demo

test: ## install what the tests need and run every test
	deploy/local/test.sh

up: ## start the local stack (Kafka, Redis, topics, five services)
	deploy/local/stack.sh up

down: ## stop everything the stack started
	deploy/local/stack.sh down

status:
	deploy/local/stack.sh status
