"""Steering the sampler's draws: every way songgen reshapes the model's choices is a step of one
kind (step.Step), and the sampler (songgen/writing/sampling.py) runs one list of them in one
loop: before each draw every step reshapes the scores (`steer`), after it every step takes in
what was drawn (`chosen`). The steps, in the order the loop runs them:

- the song's shape (shape.py: titles, lines, stanzas and songs of the corpus's lengths);
- real words (words.py: a word being drawn continues only as a known word does);
- the chorus and no stanza a third time (chorus.py), rhyme (rhyme.py), scansion (scansion.py):
  line steps, planned line by line; a line that must rhyme or scan is written on several
  LSTM rows at once and the best kept (lines.py: the lanes, and each song's text so far);
- temperature, top-k and top-p (tempered.py), then the draw (songgen/writing/drawing.py).

rows.py holds the LSTM rows the songs are written on (what the loop steps, and what a step may
snapshot, restore or read known text into); build.py makes the list from a request.
"""
