"""Accessibility, service-area needs and siting: pure computation over arrays and graphs."""
