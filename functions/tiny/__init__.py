"""Tiny random-weight models built in code (real diffusers/transformers classes): the demo and
the tests."""
