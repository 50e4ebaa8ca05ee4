"""The exporter fuses the ONNX graph for onnxruntime only when the fused graph gives the
plain one's outputs."""

from __future__ import annotations

from embedtune import export
from embedtune.export import exporter, runtime
from tests.tiny import (
    load_st,
)


def test_the_onnx_graph_is_fused_and_the_plain_one_is_not_left_behind(exported):
    import onnx

    model_dir, out = exported
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "SkipLayerNormalization" in ops, sorted(ops)  # onnxruntime's fused kernel
    assert not (out / "model_plain.onnx").exists()
    # The source model keeps its own attention (the export traces eager, then restores).
    model = load_st(model_dir)
    before = model[0].auto_model.config._attn_implementation
    export.export_model(model, model_dir, out.parent / "again", ["onnx"], opset=18)
    assert model[0].auto_model.config._attn_implementation == before


def test_a_fused_graph_that_differs_is_replaced_by_the_plain_one(tmp_path, exported, monkeypatch):
    model_dir, _ = exported
    real_runner = runtime.ort_runner
    calls = []

    def runner(path, threads):
        run = real_runner(path, threads)
        calls.append(path)
        # The second session is the fused graph: make it disagree with the plain one.
        return (lambda feeds: run(feeds) + 1e-3) if len(calls) == 2 else run

    monkeypatch.setattr(exporter, "ort_runner", runner)
    out = tmp_path / "e"
    export.export_model(load_st(model_dir), model_dir, out, ["onnx"], opset=18)
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "SkipLayerNormalization" not in ops


def test_the_graphs_hold_no_stack_traces_with_local_paths(exported):
    """The dynamo exporter stores each node's Python stack trace, absolute paths and all:
    two clones of one commit then wrote different graphs."""
    from pathlib import Path

    import onnx

    _, out = exported
    for name in ("onnx", "onnx_int8"):
        graph = onnx.load(str(out / export.FILES[name]))
        keys = {p.key for n in graph.graph.node for p in n.metadata_props}
        assert exporter.STACK_TRACE not in keys
        assert str(Path(exporter.__file__).parent) not in str(graph)  # this checkout's path
