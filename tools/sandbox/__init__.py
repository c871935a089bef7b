"""The vendor simulators and what serves them: product code for `crmops sandbox` and the
tests, never imported by a production path (tests/test_layers.py checks)."""
