"""The engine: loads models, renders prompt templates and streams generation.

It never imports textual, rich or the UI.  Heavy libraries (torch, transformers) are
imported only when a model is loaded.
"""
