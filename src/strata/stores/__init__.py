"""Metadata stores: the contract (``base.py``) and one package per backend."""
