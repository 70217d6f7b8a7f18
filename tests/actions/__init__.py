"""Tests of the actions layer."""
