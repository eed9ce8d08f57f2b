"""What the UI reads from Redis: the results feed, shift counters, frame lookup and the model table."""
