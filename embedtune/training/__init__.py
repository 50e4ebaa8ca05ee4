"""Fine-tuning: losses, the in-training evaluator, guards against a broken run, resumable
checkpoints, hard-negative mining, distributed launch and the model card."""
