"""Adapter contract and the shared driver."""
