"""Training: a run planned in one downward pass (corpus, options, every automatic choice),
its state (model, optimiser, schedule, streams; exact resume), the loop, validation, progress on
stderr, Ctrl-C and signals, and the team of processes under torchrun."""
