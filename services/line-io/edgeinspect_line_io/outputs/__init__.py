"""Where verdicts and reject pulses go: one ``Output`` per PLC connection (see ``base``)."""
