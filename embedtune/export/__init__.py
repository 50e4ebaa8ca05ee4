"""The fine-tuned model for CPU serving: ``exporter`` writes ONNX / OpenVINO graphs,
``runtime`` encodes with them, ``layout`` is the folder format both share.

``from embedtune.export import load_encoder`` is the public entry point."""

from embedtune.export.exporter import export_model
from embedtune.export.layout import FILES, FORMATS
from embedtune.export.runtime import ExportedEncoder, load_encoder, pool

__all__ = ["FILES", "FORMATS", "ExportedEncoder", "export_model", "load_encoder", "pool"]
