# dinoscope: `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Extras each target needs (torch is pinned in pyproject: torch==2.14.1 torchvision==0.29.1).
TEST_EXTRAS := dev,models,video,coco,onnx,umap,faiss,report,seg,adapt,ray,fiftyone
DEMO_EXTRAS := models,video,coco,umap,faiss,report
PIP_FLAGS   := --quiet --disable-pip-version-check --no-input

.PHONY: demo test lint format clean-venv bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,
TEST_STAMP := $(VENV)/.installed-$(subst $(comma),+,$(TEST_EXTRAS))
DEMO_STAMP := $(VENV)/.installed-$(subst $(comma),+,$(DEMO_EXTRAS))

demo: $(DEMO_STAMP)
	$(BIN)/dinoscope demo --out runs/demo

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports
	@# pytest exits 5 when it collects no test: a suite that runs nothing must fail, not pass.
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

format: $(TEST_STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/check.py

clean-venv:
	rm -rf $(VENV)
