"""Training of the generator, mapping and reader (``kfaar train``). Needs torch; never imported at inference."""
