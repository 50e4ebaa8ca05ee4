"""The training curves keep every model figure and drop the wall-clock ones, which differ
on every run of the same commit."""

from embedtune.training.curves import untimed


def test_timings_are_dropped_and_model_figures_kept():
    logs = {
        "loss": 5.8,
        "grad_norm": 50.3,
        "learning_rate": 1e-4,
        "epoch": 1.0,
        "eval_dim_128_cosine_ndcg@10": 0.5,
        "eval_runtime": 55.8,
        "eval_samples_per_second": 0.0,
        "eval_steps_per_second": 0.0,
        "train_runtime": 461.3,
        "train_samples_per_second": 2.6,
        "train_steps_per_second": 0.08,
        "train_loss": 4.86,
        "total_flos": 0.0,
    }
    assert untimed(logs) == {
        "loss": 5.8,
        "grad_norm": 50.3,
        "learning_rate": 1e-4,
        "epoch": 1.0,
        "eval_dim_128_cosine_ndcg@10": 0.5,
        "train_loss": 4.86,
        "total_flos": 0.0,
    }
    assert untimed(None) == {}
