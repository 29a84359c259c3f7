"""Training: the trainer (optimisers, recipes, curriculum, validation, exact resume, DDP), schedules, the named
experiments and weights-only checkpoints."""
