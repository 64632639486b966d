"""The model: the character LSTM (`CharLSTM`), the stepper that runs it one character at a
time for sampling, and the device and numeric precision it runs on (with the start-up probes
that choose them)."""
