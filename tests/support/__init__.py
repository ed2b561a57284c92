"""Helpers shared by the test suites: image overrides, image builds, containers."""
