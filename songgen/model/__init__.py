"""The model: the character LSTM (`CharLSTM`), its style input (a style or blend applied to
it), the stepper that runs it one character at a time for sampling, the device and numeric
precision it runs on, and the probes that tell what a model of a given shape costs here
(memory, seconds a step, the bf16 speed-up) before a run chooses."""
