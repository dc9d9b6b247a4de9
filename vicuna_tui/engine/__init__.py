"""The engine: loads models, renders prompt templates and streams generation.

It never imports textual, rich or the UI.  Heavy libraries (torch, transformers) are
imported only when a model is loaded.

One package per backend: ``transformers/``, ``llamacpp/`` and ``remote/``; what they
share stays here (the ``Backend`` interface, events, settings, templates and prompting,
sources and the Hub, the thread planner, the engine thread).  ``factory.make_backend``
is the one way a front end gets a backend; ``process`` runs one in a process of its own.
"""
