"""Helpers shared by the test suite, one copy each.

Tests import from here, never from a conftest.py or from another test module. Fixtures stay in
the conftest.py files; what they build (processes, configs, rosters) lives here.
"""
