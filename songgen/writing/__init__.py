"""Writing songs: the sampler (one request, several songs side by side), the draw of each
character (temperature, top-k, top-p), the steering that keeps songs shaped, rhymed, scanning,
in real words and with a chorus, and the plagiarism guard."""
