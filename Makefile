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
# The command-line tool (src/mlstack/cli, installed into the venv): every workflow below.
MLSTACK = $(VENV)/bin/mlstack --env-file $(ENV_FILE)
IMAGES := tracking-server training inference

# The local stack's settings live in $(ENV_FILE); these few the Makefile needs too.
ENV_FILE ?= .env
env_value = $(shell sed -n 's/^$(1)=//p' $(ENV_FILE) 2>/dev/null)
COMPOSE_PROJECT ?= mlstack
MLFLOW_PORT ?= $(or $(call env_value,MLFLOW_PORT),5000)
MINIO_CONSOLE_PORT ?= $(or $(call env_value,MINIO_CONSOLE_PORT),9001)
MINIO_PORT ?= $(or $(call env_value,MINIO_PORT),9000)
EXPERIMENT_NAME ?= $(or $(call env_value,EXPERIMENT_NAME),diabetes-progression)
MODEL_NAME ?= $(or $(call env_value,MODEL_NAME),diabetes-rf)
export MLFLOW_PORT MINIO_CONSOLE_PORT MINIO_PORT
# Access control is on unless MLFLOW_AUTH_ENABLED=false (in .env or here).
MLFLOW_AUTH_ENABLED ?= $(or $(call env_value,MLFLOW_AUTH_ENABLED),true)
auth_off = $(filter false 0 no off,$(shell echo '$(MLFLOW_AUTH_ENABLED)' | tr A-Z a-z))
# What talks to the stack (scripts, training jobs, the endpoint) logs in as the admin
# of .env: exported into the recipes' environment, so no command line (`ps`) shows them.
MLFLOW_TRACKING_USERNAME = $(if $(auth_off),,$(or $(call env_value,MLFLOW_AUTH_ADMIN_USERNAME),admin))
MLFLOW_TRACKING_PASSWORD = $(if $(auth_off),,$(call env_value,MLFLOW_AUTH_ADMIN_PASSWORD))
export MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
# docker compose on the stack: its project, files (auth-off.yaml when auth is off) and env files.
COMPOSE = $(MLSTACK) local compose

# The loop: data set, one job's hyperparameters, the tuning, the endpoint.
DATASET ?= diabetes
N_ESTIMATORS ?= 100
MIN_SAMPLES_LEAF ?= 3
HPO_JOBS ?= 8
HPO_PARALLEL ?= 2
# Script mode: your own training script instead of the built-in RandomForest (both or neither).
SOURCE_DIR ?=
ENTRY_POINT ?=
SCRIPT_ARGS := $(if $(SOURCE_DIR)$(ENTRY_POINT),--source-dir "$(SOURCE_DIR)" --entry-point "$(ENTRY_POINT)")
SERVE_PORT ?= 8080
NETWORK := $(COMPOSE_PROJECT)_default
SERVE_CONTAINER := $(COMPOSE_PROJECT)-inference
LOOP = $(MLSTACK) local --network $(NETWORK) \
	--tracking-uri http://127.0.0.1:$(MLFLOW_PORT) --experiment-name $(EXPERIMENT_NAME) \
	--model-name $(MODEL_NAME) --data-dir data/$(DATASET) --image mlstack/training:$(VERSION)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "The workflows run the mlstack command: .venv/bin/mlstack --help (docs/cli.md)."

# --- set-up -------------------------------------------------------------------------------

$(VENV)/.installed: requirements-dev.txt requirements-aws.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	@# A venv that has SageMaker SDK v2: pip would install v3's packages, then delete the
	@# files they share with v2 as it removes v2. Without v2 first, v3 installs whole.
	$(VENV)/bin/pip uninstall --quiet --yes sagemaker
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt -r requirements-aws.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the host virtualenv (test and script dependencies, the `mlstack` command)

# The SageMaker Python SDK v2 in a venv of its own (the host venv has v3): the tests run
# users' v2 programs in it, as they have them.
VENV_SDK2 := .venv-sdk2
SDK2_LOCK := tests/support/sdk2/requirements.lock

$(VENV_SDK2)/.installed: $(SDK2_LOCK)
	python3 -m venv $(VENV_SDK2)
	$(VENV_SDK2)/bin/pip install --quiet --upgrade pip
	$(VENV_SDK2)/bin/pip install --quiet --require-hashes --no-deps -r $(SDK2_LOCK)
	touch $@

.PHONY: venv-sdk2
venv-sdk2: $(VENV_SDK2)/.installed ## Create the SageMaker SDK v2 virtualenv the tests run users' v2 programs in

.PHONY: offline-images
offline-images: ## Build local stand-ins for public images where no registry is reachable
	bash offline/build.sh

.PHONY: build
build: $(addprefix build-,$(IMAGES)) ## Build the three images (mlstack/<name>:VERSION, and :latest locally)

# The VERSION file is the only place the release is written: the images get it as a build
# argument (their labels), compose and the scripts from the environment exported above.
.PHONY: $(addprefix build-,$(IMAGES))
$(addprefix build-,$(IMAGES)): build-%:
	docker build --quiet --build-arg PYTHON_BASE_IMAGE=$(PYTHON_BASE_IMAGE) \
		--build-arg VERSION=$(VERSION) -t mlstack/$*:$(VERSION) -t mlstack/$*:latest \
		-f images/$*/Dockerfile .

# Each image installs exactly its lock file, hash-checked. The locks resolve the human-edited
# pins of images/<name>/requirements.txt for the images' Python (3.11) on linux x86_64, under
# images/constraints.txt: the images' pins resolved together (and held to the host venv's
# direct pins), so a dependency shared by several has one version everywhere. Versions
# already in these files are kept unless UPGRADE=1 (then the newest the pins allow).
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
IMAGE_PINS := $(foreach image,$(IMAGES),images/$(image)/requirements.txt) \
	images/training/requirements-build.txt
LOCKS := $(foreach image,$(IMAGES),images/$(image)/requirements.lock) images/training/requirements-build.lock

.PHONY: lock
lock: venv ## Regenerate the lock files (images/*/requirements*.lock, tests/support/sdk2/) from their pins; UPGRADE=1 for newer transitive versions
	$(UV_COMPILE) $(IMAGE_PINS) -c requirements-dev.txt -c requirements-aws.txt \
		-o images/constraints.txt
	$(foreach lock,$(LOCKS),$(UV_COMPILE) --generate-hashes -c images/constraints.txt \
		$(lock:.lock=.txt) -o $(lock) &&) true
	$(UV_COMPILE) --generate-hashes -c requirements-dev.txt $(SDK2_LOCK:.lock=.txt) -o $(SDK2_LOCK)

# --- checks -------------------------------------------------------------------------------

.PHONY: lint
lint: venv ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: test
test: venv venv-sdk2 ## Run every test (builds images; needs Docker)
	$(PY) -m pytest

.PHONY: test-fast
test-fast: venv ## Run the tests that need no Docker
	$(PY) -m pytest -m "not docker and not aws"

.PHONY: test-aws
test-aws: venv venv-sdk2 ## Run the AWS tests only (moto, a local registry, SageMaker local mode)
	$(PY) -m pytest -m aws

# --- the local stack ----------------------------------------------------------------------

# Always run: creates .env (0600), or tightens and completes an existing one.
$(ENV_FILE): FORCE
	@python3 src/mlstack/cli/local/make_env.py .env.example $(ENV_FILE)

.PHONY: FORCE
FORCE:

.PHONY: local-up
local-up: venv build-tracking-server ## Write or complete .env; start MySQL, MinIO and the tracking server; wait until healthy
	$(MLSTACK) local up

.PHONY: local-down
local-down: venv ## Stop the local stack (and its jobs and endpoint), keeping its data
	$(MLSTACK) local down

.PHONY: local-clean
local-clean: venv ## Stop the local stack and delete its data volumes
	$(MLSTACK) local clean

.PHONY: local-logs
local-logs: venv ## Follow the local stack's logs
	$(MLSTACK) local logs

.PHONY: local-check-collation
local-check-collation: venv $(ENV_FILE) build-tracking-server ## Report the stack's tables not yet in the case-sensitive utf8mb4_bin collation
	$(COMPOSE) run --rm --no-deps --entrypoint python tracking-server -m mlstack.tracking.collation check

# The server is stopped first: ALTER TABLE blocks its writes, and convert refuses
# while other sessions use the database. Left stopped if the conversion fails.
.PHONY: local-convert-collation
local-convert-collation: venv $(ENV_FILE) build-tracking-server ## Stop the tracking server, convert its tables to utf8mb4_bin (refuses on collisions), start it again
	$(COMPOSE) stop tracking-server
	$(COMPOSE) run --rm --no-deps --entrypoint python tracking-server -m mlstack.tracking.collation convert \
		|| { echo "tracking server left stopped: fix the above, then run this again (or make local-up)"; exit 1; }
	$(COMPOSE) up --detach --wait --wait-timeout 300

BACKUP_ROOT ?= backups

.PHONY: local-backup
local-backup: venv ## Dump the stack's databases and artifact bucket into BACKUP_ROOT/YYYYmmdd-HHMMSS/
	$(MLSTACK) local backup --project $(COMPOSE_PROJECT) --into $(BACKUP_ROOT)

.PHONY: local-restore
local-restore: venv ## Replace the stack's databases and bucket by BACKUP=backups/<stamp> (needs CONFIRM=yes)
	$(if $(BACKUP),,$(error give the backup to restore: make local-restore BACKUP=backups/<stamp> CONFIRM=yes))
	$(MLSTACK) local restore --project $(COMPOSE_PROJECT) $(BACKUP) $(if $(filter yes,$(CONFIRM)),--yes)

# --- the loop -----------------------------------------------------------------------------

data/$(DATASET)/hyperparameters.json: | venv
	$(MLSTACK) data --dataset $(DATASET) --output data/$(DATASET)

.PHONY: data
data: data/$(DATASET)/hyperparameters.json ## Write train/test channels to data/DATASET (diabetes, california)

.PHONY: data-csv
data-csv: venv ## Channels from your CSV: make data-csv CSV=path TARGET=column (then DATASET=custom)
	$(MLSTACK) data --csv $(CSV) --target $(TARGET) --output data/custom

.PHONY: local-train
local-train: venv data build-training ## One SageMaker-style training job against the stack (N_ESTIMATORS=, MIN_SAMPLES_LEAF=; SOURCE_DIR= ENTRY_POINT= for your script)
	$(LOOP) train --n-estimators $(N_ESTIMATORS) --min-samples-leaf $(MIN_SAMPLES_LEAF) $(SCRIPT_ARGS)

.PHONY: local-hpo
local-hpo: venv data build-training ## Tune: HPO_JOBS jobs, HPO_PARALLEL at a time, best one registered as MODEL_NAME (SOURCE_DIR= ENTRY_POINT=)
	$(LOOP) hpo --jobs $(HPO_JOBS) --parallel $(HPO_PARALLEL) $(SCRIPT_ARGS)

.PHONY: local-promote
local-promote: venv ## Alias `champion` the best registered version of MODEL_NAME
	$(LOOP) promote

.PHONY: local-serve
local-serve: venv build-inference ## Serve models:/MODEL_NAME@champion on 127.0.0.1:SERVE_PORT
	$(LOOP) serve --port $(SERVE_PORT) --container $(SERVE_CONTAINER) \
		--image mlstack/inference:$(VERSION)

# A model image: mlstack/inference with one model and a venv of exactly its requirements,
# for models saved with other versions than the image's (no network needed at start).
MODEL_URI ?= models:/$(MODEL_NAME)@champion
MODEL_IMAGE ?= mlstack/model-$(MODEL_NAME):$(VERSION)

.PHONY: build-model-image
build-model-image: venv build-inference ## Image serving MODEL_URI (a model dir, models:/ or runs:/) in its own environment, tagged MODEL_IMAGE
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:$(MLFLOW_PORT)} \
	$(MLSTACK) build-model-image --model-uri '$(MODEL_URI)' --image '$(MODEL_IMAGE)' \
		--base mlstack/inference:$(VERSION)

.PHONY: local-predict
local-predict: venv data ## Send the first test row to the local endpoint, print the prediction
	$(LOOP) predict --endpoint http://127.0.0.1:$(SERVE_PORT)

# Traffic to the local endpoint (the last half with two features shifted), then its captures
# against the training data. S3 is the stack's MinIO, as the artifact bucket's user: boto3's
# own variables, in the recipe's environment (no command line shows the key).
.PHONY: local-monitor
local-monitor: export AWS_ENDPOINT_URL_S3 = http://127.0.0.1:$(MINIO_PORT)
local-monitor: export AWS_ACCESS_KEY_ID = $(or $(call env_value,MINIO_MLFLOW_USER),mlflow-artifacts)
local-monitor: export AWS_SECRET_ACCESS_KEY = $(call env_value,MINIO_MLFLOW_PASSWORD)
local-monitor: venv data ## Send traffic (half of it shifted) to the local endpoint, then `mlstack monitor`: drift report and MLflow run
	$(LOOP) traffic --endpoint http://127.0.0.1:$(SERVE_PORT)
	$(MLSTACK) monitor --model-name $(MODEL_NAME) --since 1h --window 1m \
		--ground-truth build/monitor/ground-truth.csv --output-dir build/monitor/report

.PHONY: demo
demo: venv data build ## Everything in order: stack, data, train, tune, promote, serve, predict
	N_ESTIMATORS=$(N_ESTIMATORS) MIN_SAMPLES_LEAF=$(MIN_SAMPLES_LEAF) \
	TUNING_MAX_JOBS=$(HPO_JOBS) TUNING_MAX_PARALLEL_JOBS=$(HPO_PARALLEL) \
	$(LOOP) demo --port $(SERVE_PORT)

# --- AWS ----------------------------------------------------------------------------------
# Real runs need an AWS account (AWS_PROFILE / AWS_REGION); the tests use moto.

AWS = $(MLSTACK) aws

.PHONY: push
push: venv ## Build the images for linux/amd64, push them to ECR, print their URIs (MODEL_IMAGE=name:tag: push that model image only)
	$(AWS) push $(if $(filter command line environment,$(origin MODEL_IMAGE)),--model-image '$(MODEL_IMAGE)')

.PHONY: sagemaker-local
sagemaker-local: venv data build-training build-inference ## SageMaker SDK local mode against the local stack: train, deploy, predict (SOURCE_DIR= ENTRY_POINT=)
	MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT) EXPERIMENT_NAME=$(EXPERIMENT_NAME) \
	DATA_DIR=data/$(DATASET) N_ESTIMATORS=$(N_ESTIMATORS) MIN_SAMPLES_LEAF=$(MIN_SAMPLES_LEAF) \
	SOURCE_DIR="$(SOURCE_DIR)" ENTRY_POINT="$(ENTRY_POINT)" \
	$(AWS) sagemaker-local

.PHONY: deploy-fargate
deploy-fargate: venv ## Create or update the Fargate tracking server (VPC_ID, LB_SUBNET_IDS, PRIVATE_SUBNET_IDS); print its URL
	$(AWS) deploy-fargate

.PHONY: deploy-endpoint
deploy-endpoint: venv ## Deploy MODEL_NAME@champion to a SageMaker endpoint (MLFLOW_TRACKING_URI, SAGEMAKER_ROLE_ARN, MODEL_S3_URI or MODEL_IMAGE_URI)
	MODEL_NAME=$(MODEL_NAME) $(AWS) deploy-endpoint

.PHONY: invoke-endpoint
invoke-endpoint: venv data ## Send the reference's request (the first test row) to the SageMaker endpoint
	MODEL_NAME=$(MODEL_NAME) TEST_CSV=data/$(DATASET)/test/test.csv $(AWS) invoke

.PHONY: tune
tune: venv data ## SageMaker hyperparameter tuning, each job under one MLflow parent run (SOURCE_DIR= ENTRY_POINT=)
	EXPERIMENT_NAME=$(EXPERIMENT_NAME) DATA_DIR=data/$(DATASET) TUNING_MAX_JOBS=$(HPO_JOBS) \
	SOURCE_DIR="$(SOURCE_DIR)" ENTRY_POINT="$(ENTRY_POINT)" \
	TUNING_MAX_PARALLEL_JOBS=$(HPO_PARALLEL) $(AWS) tune
