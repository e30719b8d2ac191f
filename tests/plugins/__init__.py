"""Fixtures shared by several test folders, as pytest plugins registered once in tests/conftest.py.

A test folder uses them by name; it never imports another folder's conftest.py. Helpers that tests
import (classes, constants, functions) live in these modules too and are imported from here.
"""
