"""A run on disk: the checkpoint file (its schema, safe load, checks), the run folder and
what `songgen info` says of it, its training curves, a checkpoint loaded for use (`Trained`),
and the bundled base model that new runs on small collections start from."""
