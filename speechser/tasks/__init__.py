"""Tasks: one module per task (:mod:`~speechser.tasks.asr`, :mod:`~speechser.tasks.ser`), each building
its model, data and collation from a resolved config, and offering ``load_experiment(dir)`` for everything
that uses a trained model. :mod:`~speechser.tasks.experiment_dir` holds what they share."""
