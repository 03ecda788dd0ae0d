# `make demo` and `make test` are all a fresh clone needs: each creates .venv from requirements.txt first.
VENV ?= .venv
PY := $(VENV)/bin/python
# nbgrader shells out to alembic, which lives in the venv's bin.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo reference-run test bench release check-release gradescope data clean

demo: $(VENV)/.ready
	$(PY) -m autograder.demo

reference-run: $(VENV)/.ready
	$(PY) -m autograder.demo --notebook

# pytest exits 5 when it collected no tests: say so, and fail.
test: $(VENV)/.ready
	$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure here."; fi; \
	exit $$status

BENCH_COPIES ?= 4
BENCH_JOBS ?= 1
bench: $(VENV)/.ready
	$(PY) bench/grade_copies.py --copies $(BENCH_COPIES) --jobs $(BENCH_JOBS)

# One Gradescope autograder.zip per assignment, under out/gradescope/<assignment>/ (GRADESCOPE_ARGS: e.g.
# --visibility training_keeps_up=after_published resnet_paper_cifar10).
gradescope: $(VENV)/.ready
	$(PY) -m autograder.gradescope $(GRADESCOPE_ARGS)

release: $(VENV)/.ready
	$(PY) -m autograder.release

check-release: $(VENV)/.ready
	$(PY) -m autograder.release --check

DATA_DIR ?= data/synthetic
data: $(VENV)/.ready
	$(PY) -m autograder.data $(DATA_DIR)
	$(PY) -m autograder.data $(DATA_DIR) --mnist

$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

clean:
	rm -rf out data/synthetic .pytest_cache
