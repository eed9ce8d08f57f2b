"""Where triggers come from: one ``Input`` per PLC connection (see ``base``)."""
