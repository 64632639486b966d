"""Training: how a call goes on with the run already in its folder (the demo run, steps more, a
run complete already), a run planned in one downward pass (corpus, options, every automatic
choice), its state (model, optimiser, learning-rate schedule, streams; exact resume), the loop,
validation, progress on stderr, Ctrl-C and signals, and the team of processes under torchrun."""
