# The two commands a new user needs: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv and fetch the Kafka broker jars from Maven Central on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install browser check down clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "abstream needs Python 3.11+, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	$(BIN)/abstream local fetch
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/abstream demo

test: install browser
	$(BIN)/pytest

# The dashboard's browser test drives Debian's chromium (a downloaded browser is never used):
# installed here when running as root, otherwise say how.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
		|| { echo "the dashboard's browser test needs chromium: sudo apt-get install -y chromium" >&2; exit 1; }

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

down:
	-$(BIN)/abstream demo stop
	$(BIN)/abstream local down

clean:
	rm -rf $(VENV) build *.egg-info
