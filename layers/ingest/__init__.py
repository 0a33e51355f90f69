"""Ingest: files and services into registry layers, each load in one transaction."""
