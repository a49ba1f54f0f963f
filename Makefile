# Switchboard: `make run` starts the proxy on :5000, `make test` runs the whole suite.
# Both create the virtualenv (.venv) and install what they need on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv run test

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

run: venv
	$(VENV)/bin/gunicorn -c gunicorn.conf.py

test: venv
	$(PY) -m pytest -n 2 --dist loadfile
