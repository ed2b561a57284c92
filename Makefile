# mlstack: the menu. `make` or `make help` lists every workflow, grouped; the `mlstack`
# command (src/mlstack/cli, installed into the venv) does the work of each.
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

# The stack is its settings file: its name, ports and secrets, written by `mlstack local up`
# (`make local-up`); every target below acts on the stack it names. ENV_FILE=.env.other (on
# this command line, or exported once) picks another stack.
ENV_FILE ?= .env
export ENV_FILE
MLSTACK = $(VENV)/bin/mlstack --env-file $(ENV_FILE)
LOOP = $(MLSTACK) local
AWS = $(MLSTACK) aws

# The settings reach the command as environment: a variable given here (N_ESTIMATORS=50,
# MODEL_NAME=..., SERVE_PORT=..., HPO_JOBS=4; docs/configuration.md) is exported by make,
# read by mlstack over the stack's settings file, and named by it when its value is wrong.
# DATASET picks the channels of data/DATASET (diabetes, california, custom).
DATASET ?= diabetes
ifneq ($(filter command line environment,$(origin DATASET)),)
export DATA_DIR := data/$(DATASET)
endif
BACKUP_ROOT ?= backups

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*## "} \
		/^##@ / {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)} \
		/^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Each runs the mlstack command: .venv/bin/mlstack --help (docs/cli.md);"
	@echo "a mistake and its fix: docs/troubleshooting.md."

##@ Start here

.PHONY: demo
demo: venv data build ## Everything in order: the stack, a job, a tuning, the champion served and asked
	$(LOOP) demo

.PHONY: local-up
local-up: venv build-tracking-server ## Start the local stack (MySQL, MinIO, the tracking server), writing its ENV_FILE first
	$(LOOP) up

.PHONY: local-login
local-login: venv ## Print the UI's URL and the export lines that log MLflow's client in (eval them)
	@$(LOOP) login

##@ The loop

data/$(DATASET)/hyperparameters.json: | venv
	$(MLSTACK) data --dataset $(DATASET) --output data/$(DATASET)

.PHONY: data
data: data/$(DATASET)/hyperparameters.json ## Write train/test channels to data/DATASET (diabetes, california)

.PHONY: data-csv
data-csv: venv ## Channels from your CSV: make data-csv CSV=path TARGET=column (then DATASET=custom)
	$(MLSTACK) data --csv $(CSV) --target $(TARGET) --output data/custom

.PHONY: local-train
local-train: venv data build-training ## One SageMaker-style training job against the stack (N_ESTIMATORS=, MIN_SAMPLES_LEAF=; SOURCE_DIR= ENTRY_POINT= for your script)
	$(LOOP) train

.PHONY: local-hpo
local-hpo: venv data build-training ## Tune: HPO_JOBS jobs, HPO_PARALLEL at a time, a new seed unless TUNING_SEED=; the best registered
	$(LOOP) hpo

.PHONY: local-promote
local-promote: venv ## Alias `champion` the best registered version of MODEL_NAME, saying why it moved or stayed
	$(LOOP) promote

.PHONY: local-serve
local-serve: venv build-inference ## Serve models:/MODEL_NAME@champion on 127.0.0.1:SERVE_PORT
	$(LOOP) serve

.PHONY: local-predict
local-predict: venv data ## Send the first test row to the local endpoint, print the prediction
	$(LOOP) predict

# Traffic to the local endpoint (the last half with two features shifted), then its captures
# in the stack's MinIO against the model's training data.
.PHONY: local-monitor
local-monitor: venv data ## Send traffic (half of it shifted) to the local endpoint, then `mlstack monitor`: drift report and MLflow run
	$(LOOP) traffic
	$(MLSTACK) monitor --since 1h --window 1m \
		--ground-truth build/monitor/ground-truth.csv --output-dir build/monitor/report

# A model image: mlstack/inference with one model and a venv of exactly its requirements,
# for models saved with other versions than the image's (no network needed at start).
.PHONY: build-model-image
build-model-image: venv build-inference ## Image serving MODEL_URI (default models:/MODEL_NAME@champion) in its own environment, tagged MODEL_IMAGE
	$(MLSTACK) build-model-image $(if $(MODEL_URI),--model-uri '$(MODEL_URI)') \
		$(if $(MODEL_IMAGE),--image '$(MODEL_IMAGE)')

##@ Operations

.PHONY: local-down
local-down: venv ## Stop the local stack (and its jobs and endpoint), keeping its data
	$(LOOP) down

.PHONY: local-clean
local-clean: venv ## Stop the local stack and delete its data volumes
	$(LOOP) clean

.PHONY: local-logs
local-logs: venv ## Follow the local stack's logs
	$(LOOP) logs

.PHONY: local-backup
local-backup: venv ## Dump the stack's databases and artifact bucket into BACKUP_ROOT/YYYYmmdd-HHMMSS/
	$(LOOP) backup --into $(BACKUP_ROOT)

.PHONY: local-restore
local-restore: venv ## Replace the stack's databases and bucket by BACKUP=backups/<stamp> (needs CONFIRM=yes)
	$(if $(BACKUP),,$(error give the backup to restore: make local-restore BACKUP=backups/<stamp> CONFIRM=yes))
	$(LOOP) restore $(BACKUP) $(if $(filter yes,$(CONFIRM)),--yes)

.PHONY: local-check-collation
local-check-collation: venv build-tracking-server ## Report the stack's tables not yet in the case-sensitive utf8mb4_bin collation
	$(LOOP) make-env
	$(LOOP) compose run --rm --no-deps --entrypoint python tracking-server -m mlstack.tracking.collation check

# The server is stopped first: ALTER TABLE blocks its writes, and convert refuses
# while other sessions use the database. Left stopped if the conversion fails.
.PHONY: local-convert-collation
local-convert-collation: venv build-tracking-server ## Stop the tracking server, convert its tables to utf8mb4_bin (refuses on collisions), start it again
	$(LOOP) make-env
	$(LOOP) compose stop tracking-server
	$(LOOP) compose run --rm --no-deps --entrypoint python tracking-server -m mlstack.tracking.collation convert \
		|| { echo "tracking server left stopped: fix the above, then run this again (or make local-up)"; exit 1; }
	$(LOOP) compose up --detach --wait --wait-timeout 300

# The VERSION file is the only place the release is written: the images get it as a build
# argument (their labels), compose and the command from the environment exported above.
.PHONY: build
build: venv ## Build the three images (mlstack/<name>:VERSION, and :latest locally); build-NAME builds one
	$(MLSTACK) build $(IMAGES)

.PHONY: $(addprefix build-,$(IMAGES))
$(addprefix build-,$(IMAGES)): build-%: venv
	$(MLSTACK) build $*

.PHONY: offline-images
offline-images: ## Build local stand-ins for public images where no registry is reachable
	bash offline/build.sh

##@ AWS (an account: AWS_PROFILE / AWS_REGION; the tests use moto)

.PHONY: push
push: venv ## Build the images for linux/amd64, push them to ECR, print their URIs (MODEL_IMAGE=name:tag: push that model image only)
	$(AWS) push $(if $(MODEL_IMAGE),--model-image '$(MODEL_IMAGE)')

.PHONY: sagemaker-local
sagemaker-local: venv data build-training build-inference ## SageMaker SDK local mode against the local stack: train, deploy, predict (SOURCE_DIR= ENTRY_POINT=)
	$(AWS) sagemaker-local

.PHONY: deploy-fargate
deploy-fargate: venv ## Create or update the Fargate tracking server (VPC_ID, LB_SUBNET_IDS, PRIVATE_SUBNET_IDS); print its URL
	$(AWS) deploy-fargate

.PHONY: deploy-endpoint
deploy-endpoint: venv ## Deploy MODEL_NAME@champion to a SageMaker endpoint (MLFLOW_TRACKING_URI, SAGEMAKER_ROLE_ARN, MODEL_S3_URI or MODEL_IMAGE_URI)
	$(AWS) deploy-endpoint

.PHONY: invoke-endpoint
invoke-endpoint: venv data ## Send the reference's request (the first test row) to the SageMaker endpoint
	$(AWS) invoke

.PHONY: tune
tune: venv data ## SageMaker hyperparameter tuning, each job under one MLflow parent run (SOURCE_DIR= ENTRY_POINT=)
	$(AWS) tune

##@ Development

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

.PHONY: lint
lint: venv ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: test
test: venv venv-sdk2 ## Run every test (builds images; needs Docker)
	$(PY) -m pytest --durations=20

# Every test must pass in any order: pytest-randomly shuffles the files and the tests in each
# and prints its seed ("Using --randomly-seed=N"); SEED=N repeats that order.
.PHONY: test-shuffled
test-shuffled: venv venv-sdk2 ## Run every test in a random order, its seed printed (SEED=n repeats an order)
	$(PY) -m pytest -p randomly $(if $(SEED),--randomly-seed=$(SEED))

.PHONY: test-fast
test-fast: venv ## Run the tests that need no Docker
	$(PY) -m pytest -m "not docker and not aws"

.PHONY: test-aws
test-aws: venv venv-sdk2 ## Run the AWS tests only (moto, a local registry, SageMaker local mode)
	$(PY) -m pytest -m aws
