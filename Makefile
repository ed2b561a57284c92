# mlstack: the menu. `make` or `make help` lists every workflow.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VERSION := $(shell cat VERSION)
# Local stand-ins for public images, recorded by `make offline-images`.
-include .images.env
PYTHON_BASE_IMAGE ?= python:3.11-slim
export PYTHON_BASE_IMAGE MYSQL_IMAGE MINIO_IMAGE VERSION

VENV := .venv
PY := $(VENV)/bin/python
IMAGES := tracking-server training inference
COMPOSE := docker compose -f compose/compose.yaml --env-file .env \
	$(if $(wildcard .images.env),--env-file .images.env)
MLFLOW_PORT ?= $(or $(shell sed -n 's/^MLFLOW_PORT=//p' .env 2>/dev/null),5000)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- set-up -------------------------------------------------------------------------------

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the host virtualenv with the test and script dependencies

.PHONY: offline-images
offline-images: ## Build local stand-ins for public images where no registry is reachable
	bash offline/build.sh

.PHONY: build
build: $(addprefix build-,$(IMAGES)) ## Build the three images (mlstack/<name>:VERSION)

.PHONY: $(addprefix build-,$(IMAGES))
$(addprefix build-,$(IMAGES)): build-%:
	docker build --quiet --build-arg PYTHON_BASE_IMAGE=$(PYTHON_BASE_IMAGE) \
		--build-arg VERSION=$(VERSION) -t mlstack/$*:$(VERSION) images/$*

# --- checks -------------------------------------------------------------------------------

.PHONY: lint
lint: venv ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: test
test: venv ## Run every test (builds images; needs Docker)
	$(PY) -m pytest

.PHONY: test-fast
test-fast: venv ## Run the tests that need no Docker
	$(PY) -m pytest -m "not docker and not aws"

# --- the local stack ----------------------------------------------------------------------

.env:
	python3 scripts/make_env.py .env.example .env

.PHONY: local-up
local-up: .env build-tracking-server ## Start MySQL, MinIO and the tracking server; wait until healthy
	$(COMPOSE) up --detach --wait --wait-timeout 300
	@echo "MLflow UI and tracking URI: http://127.0.0.1:$(MLFLOW_PORT)"
	@echo "MinIO console:              http://127.0.0.1:$$(sed -n 's/^MINIO_CONSOLE_PORT=//p' .env)"

.PHONY: local-down
local-down: ## Stop the local stack, keeping its data
	$(COMPOSE) down

.PHONY: local-clean
local-clean: ## Stop the local stack and delete its data volumes
	$(COMPOSE) down --volumes --remove-orphans

.PHONY: local-logs
local-logs: ## Follow the local stack's logs
	$(COMPOSE) logs --follow --tail 100
