"""Review of captured frames: a small web page to confirm or correct labels and masks, exported as a
dataset in the training layout with provenance (``edgeinspect review``)."""
