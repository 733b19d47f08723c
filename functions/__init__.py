"""Inference code for each runner pipeline: plain Python over diffusers/transformers.

Nothing here knows about HTTP or Modal. Invalid arguments raise `ValueError` naming the
argument; callers translate errors at their own boundary.
"""
