# nmu: `make figures` and `make test` are what a user needs (README); every other target says what it is for.
# Every target creates .venv with the pinned packages when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY ?= $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= quick
RESULTS ?= results/$(PROFILE)
SHARED_DATA ?= ../shared/data
# Where missing models and runs are computed (docs/cluster.md): inline (this process), local (subprocesses,
# a GPU each), slurm (a job array), or a YAML dict of options: EXECUTOR='{kind: slurm, partition: gpu}'.
EXECUTOR ?= inline
# The data root: $NMU_DATA if set and not empty (nmu takes a relative one from this folder), else data/ here.
ifeq ($(strip $(NMU_DATA)),)
override NMU_DATA := $(CURDIR)/data
endif
export NMU_DATA
space := $(subst ,, )
ifneq ($(findstring $(space),$(RESULTS)),)
$(error RESULTS="$(RESULTS)" has a space, which make cannot handle in file names; choose a folder without one)
endif

.PHONY: venv data figures preflight smoke search plan test bench cost paper-check paper-carry paper-ledger lab clean clean-cache
.DELETE_ON_ERROR:

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Real data sets for offline machines: unpack the archives of the data sets $(PROFILE) uses found at
# $(SHARED_DATA) (quick: cifar10-jpeg, cifar100-jpeg; paper: also tiny-imagenet-200; smoke: none, its
# digits come with scikit-learn) into the data root $(NMU_DATA), each
# through a temporary folder under a lock, checked against its official image counts, then renamed
# into place. A second run only checks; a partial tree there is reported (with what to delete), not
# used. With internet, nmu downloads the original files itself, so a missing default SHARED_DATA is
# no error (one set on the command line is). (-W: runpy warns about running a module that
# nmu/__init__ has already imported; harmless here.)
data: $(STAMP)
	$(PY) -W "ignore:'nmu.archives' found in sys.modules:RuntimeWarning" -m nmu.archives unpack "$(SHARED_DATA)" \
		--root "$(NMU_DATA)" $(if $(filter file,$(origin SHARED_DATA)),--missing-ok) --only $(PROFILE_ARCHIVES)
PROFILE_ARCHIVES = $(shell $(PY) -c "from nmu.profiles import get_profile; print(*get_profile('$(PROFILE)').archives())")

test: $(STAMP)
	$(PY) -m pytest

# Training throughput of nmu's trainer vs a torchvision DataLoader + PIL pipeline (not a test).
bench: $(STAMP) data
	$(PY) bench/train_throughput.py

# Where $(RESULTS)'s time went, from its manifests and runs.csv (retraining, unlearning per method, the rest).
cost: $(STAMP)
	$(PY) bench/cold_cost.py $(RESULTS)

# Paper scale on one GPU (bench/paper_check.py): trainer throughput vs a reference-style pipeline, the
# original and retrained VGG-16-BN on CIFAR-10 (100 epochs each), then NatMU,
# RL, SalUn and more with the paper presets, each stage's files in results/paper/check/ as it ends.
# cuDNN in benchmark mode (faster, not bitwise reproducible; recorded). ARGS: e.g. --budget-s 540.
paper-check: $(STAMP) | data
	NMU_CUDNN=benchmark $(PY) bench/paper_check.py --out results/paper/check $(ARGS)

# The paper-scale tables (results/paper/<dataset>.md, .csv) from every committed GPU ledger run in
# results/paper/ledger/ (one bench/paper_check.py run per folder): means, 95 % CIs over seeds, paired NatMU.
paper-ledger: $(STAMP)
	$(PY) bench/paper_ledger.py

# What a lent GPU machine without nmu's packages or network needs, in git-ignored folders to carry
# (bench/gpu/README.md): the CIFAR archives, submitit (.whl/) and papermill's wheels (.whl-nb/),
# all for CPython 3.12 on x86-64; then what each device_check.sh mode carries, the working tree included.
WHEEL_TARGET := --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
	$(foreach n,2_28 2_27 2_26 2_17 2_12 2_5,--platform manylinux_$(n)_x86_64) --platform manylinux2014_x86_64 \
	--platform manylinux2010_x86_64 --platform manylinux1_x86_64 --platform any
paper-carry:
	@for f in cifar10-jpeg.tar.xz cifar100-jpeg.tar.xz; do test -f "$(SHARED_DATA)/$$f" || { echo "make paper-carry: \
	no $(SHARED_DATA)/$$f; set SHARED_DATA to the folder of the CIFAR JPEG archives (../shared/data here)" >&2; exit 1; }; done
	mkdir -p .paper-data .whl .whl-nb
	cp -u $(SHARED_DATA)/cifar10-jpeg.tar.xz $(SHARED_DATA)/cifar100-jpeg.tar.xz .paper-data/
	$(PYTHON) -m pip download --quiet $(WHEEL_TARGET) -d .whl "$$(grep -i '^submitit==' requirements.txt)"
	$(PYTHON) -m pip download --quiet $(WHEEL_TARGET) -d .whl-nb -r bench/gpu/notebook-wheels.txt
	@bytes() { du -cb "$$@" 2>/dev/null | tail -1 | cut -f1; }; \
	tree=$$(git ls-files -coz --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1); \
	awk -v t="$$tree" -v c10="$$(bytes .paper-data/cifar10-jpeg.tar.xz .whl)" \
		-v c100="$$(bytes .paper-data/cifar100-jpeg.tar.xz .whl)" -v nb="$$(bytes .paper-data .whl .whl-nb)" \
		'BEGIN { m = 1048576; printf "make paper-carry: what a lease carries, this working tree (%.1f MiB) included, of 64 MiB:", t / m; \
		printf " check %.1f MiB, check --dataset cifar100 %.1f, figures and notebook %.1f\n", (t + c10) / m, (t + c100) / m, (t + nb) / m; \
		fflush(); if ((t + nb) / m > 64) print "make paper-carry: figures and notebook exceed 64 MiB; untracked files travel too: move them out" > "/dev/stderr" }'

# Every notebook, executed by papermill into $(RESULTS)/ (figures PNG+PDF, tables MD+CSV,
# manifest.json per notebook). Trained models come from the checkpoint cache in $(NMU_DATA).
# Make tracks each notebook with a local stamp in $(RESULTS)/.done/ (not committed), so a fresh
# clone regenerates every committed result, and later runs redo only what changed.
NOTEBOOKS := $(filter-out search,$(basename $(notdir $(wildcard notebooks/*.ipynb))))
SOURCES := $(wildcard nmu/*.py nmu/*.yaml)
DONE := $(RESULTS)/.done

figures: $(NOTEBOOKS:%=$(DONE)/%)

# What `figures` says first: this machine (precision, threads, speed), whether it reproduces the results
# in $(RESULTS) (computed with the precision and threads their manifests record), and the time it will take.
# It also marks the start of this run and counts the notebooks it will execute, for "notebook k of n" below:
# a dry run of the same goals (`make`, not $$(MAKE), so that it does not recurse; PROFILE_ARCHIVES given,
# so that it starts no Python).
preflight: $(STAMP)
	@$(PY) -m nmu.cost --profile $(PROFILE) --results $(RESULTS)
	@mkdir -p $(DONE) && touch $(DONE)/.run-start
	@make -n --no-print-directory $(or $(MAKECMDGOALS),figures) PROFILE_ARCHIVES= 2>/dev/null | grep -c '^echo "== make figures: notebook' > $(DONE)/.run-todo || true

# Every notebook under the smoke profile (8x8 digits, seconds per notebook) into results/smoke/.
smoke:
	$(MAKE) figures PROFILE=smoke

# $(call papermill,NOTEBOOK,NAME,EXTRA_ARGS): execute NOTEBOOK into $(RESULTS)/NAME.ipynb and its
# outputs into $(RESULTS)/NAME/, through a .part file so an interrupted run leaves no half notebook.
# $(EXECUTOR) goes, as YAML, to every notebook whose parameters declare an executor. Progress bars
# (models, runs, with ETAs) go to this terminal, not into the executed notebook (NMU_PROGRESS=terminal),
# and nmu.scrub leaves no path of this machine in it.
define papermill
@mkdir -p $(RESULTS)
NMU_PROGRESS=$${NMU_PROGRESS:-terminal} $(PY) -m papermill $(1) $(RESULTS)/$(2).part.ipynb $(3) -p profile $(PROFILE) -p out_dir $(RESULTS)/$(2) $(if $(shell grep -l '"executor' $(1)),-y "executor: $(EXECUTOR)") --log-level WARNING
$(PY) -m nmu.scrub $(RESULTS)/$(2).part.ipynb
mv $(RESULTS)/$(2).part.ipynb $(RESULTS)/$(2).ipynb
endef

# The claims notebook reads the comparison notebooks' runs and the robustness notebook's common grid.
$(DONE)/claims: $(DONE)/sample_wise $(DONE)/hardest $(DONE)/class_wise $(DONE)/robustness

$(DONE)/%: notebooks/%.ipynb $(SOURCES) $(STAMP) | data preflight
	@echo "== make figures: notebook $$(( $$(find $(DONE) -maxdepth 1 -type f -newer $(DONE)/.run-start ! -name '.run-*' | wc -l) + 1 )) of $$(cat $(DONE)/.run-todo), $* ($(PROFILE) profile) -> $(RESULTS)/$*/"
	$(call papermill,$<,$*)
	@mkdir -p $(DONE)
	touch $@

# The hyperparameter search that set the profile's presets (nmu/presets.yaml): every method's grid
# (notebooks/params/search-$(PROFILE).yaml) on validation experiments, one notebook per setting family
# into $(RESULTS)/search/<family>/ (each a part to commit as it ends), whose presets.yaml files together
# are the profile's section of nmu/presets.yaml. Not part of `figures` (quick: 6 models, 216 runs
# and the extensions; times in results/README.md). `make search-random` runs one family.
SEARCH_FAMILIES = $(shell $(PY) -c "import sys, yaml; print(*yaml.safe_load(open(sys.argv[1]))['settings'])" \
	notebooks/params/search-$(PROFILE).yaml)
search: $(STAMP) | data
	$(MAKE) $(addprefix search-,$(SEARCH_FAMILIES))

search-%: $(STAMP) | data
	@mkdir -p $(RESULTS)/search
	$(call papermill,notebooks/search.ipynb,search/$*,-p family $*)

# What `make figures PROFILE=...` would compute (models and runs, counted), without data or a GPU.
plan: $(STAMP)
	$(PY) -m nmu.plan --profile $(PROFILE)

# JupyterLab on the repository, opening index.ipynb: links to every notebook template (notebooks/) and
# every executed result (results/). As root (containers, GPU cloud machines) it needs --allow-root.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. index.ipynb $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Removes build litter, half-written notebooks and the work folders of interrupted notebook runs
# (.<name>.partial-<writer>/ whose process is gone, under results/ and $(RESULTS)); results/, .venv and
# the data root (datasets, checkpoints) stay: `make clean-cache` empties the cache.
clean:
	rm -rf .pytest_cache build *.egg-info results/*/*.part.ipynb $(RESULTS)/*.part.ipynb
	test ! -x $(PY) || $(PY) -m nmu.report clean results $(RESULTS)
	find . -path ./$(VENV) -prune -o -name __pycache__ -prune -exec rm -rf {} +

# Deletes the data root's decoded data sets (cache/) and trained models (checkpoints/), each only if
# it holds nothing but nmu's files (nmu.cache.clean).
clean-cache: $(STAMP)
	$(PY) -W "ignore:'nmu.cache' found in sys.modules:RuntimeWarning" -m nmu.cache clean
