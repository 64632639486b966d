"""A run on disk: the checkpoint file (its schema, safe load, checks), the run folder (lock,
rotation, resume), what `songgen info` says of a checkpoint or run, its training curves, how a
run's folders are found and whether one is training now, a checkpoint loaded for use
(`Trained`, in a style if asked), and the bundled base model that new runs on small
collections start from."""
