"""A view inside the model: a text scored character by character (the probability of each
character, the choices the model had, what songgen's steering did to them, the LSTM's cells),
as JSON Lines, a self-contained page (`songgen explain`) and the studio's Inside tab."""
