"""embedtune: the shared code of the pipeline's stages (stages/), grouped by concept.

Core modules (config, io, cli, errors, metrics, models) sit below the groups; each group
(data, retrieval, training, export, documents, reporting) imports only the core and the
groups below it. ``from embedtune.export import load_encoder`` serves an exported model.
"""
