# The two commands a new user needs: `make run` and `make test`. Both install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PROTO_FILES := $(wildcard protos/binance/provider/v1/*.proto)
GENERATED := generated/.stamp
HAND_WRITTEN := provider gateway_auth gateway_http gateway_mcp exchange_sim provider_client service_runtime launcher tests bench soak

.PHONY: install protos run test lint bench soak clean mcp-conformance

install: $(INSTALLED) $(GENERATED)

# A virtual environment with pinned dependencies; generated/ is put on its path by a .pth file.
$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	echo "$(CURDIR)/generated" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/binance-gateway-generated.pth"
	touch $@

# Python, gRPC and .pyi stubs from protos/ into generated/ (never edited, never committed).
protos: $(GENERATED)
$(GENERATED): $(INSTALLED) $(PROTO_FILES)
	rm -rf generated && mkdir -p generated
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I protos \
		--python_out=generated --grpc_python_out=generated \
		--mypy_out=generated --mypy_grpc_out=generated $(PROTO_FILES)
	touch $@

run: install
	$(BIN)/python -m launcher

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check $(HAND_WRITTEN)
	$(BIN)/mypy $(HAND_WRITTEN)

bench: install
	$(BIN)/python -m bench

# The official MCP conformance suite's server scenarios against gateway_mcp (npm fetches Node 22 and the
# pinned suite into .cache/node on first use).
mcp-conformance: install
	$(BIN)/python -m pytest tests/e2e/test_mcp_conformance.py $(PYTEST_ARGS)

# The whole system under load and a seeded fault schedule; report in docs/soak.md, exit 1 on a missed goal.
# SOAK_PROFILE=ci (50 symbols, 100 WS clients) or full (200, 1000); default: ci up to 300 s, full beyond.
DURATION ?= 120
SOAK_PROFILE ?=
soak: install
	$(BIN)/python -m soak --duration $(DURATION) $(if $(SOAK_PROFILE),--profile $(SOAK_PROFILE)) \
		--command "make soak DURATION=$(DURATION)$(if $(SOAK_PROFILE), SOAK_PROFILE=$(SOAK_PROFILE))"

clean:
	rm -rf $(VENV) generated .mypy_cache .ruff_cache .pytest_cache
