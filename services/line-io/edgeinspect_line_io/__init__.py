"""edgeinspect-line-io: the line's PLC connections - triggers in, verdicts and reject pulses out.

See services/line-io/README.md and docs/line-io.md; the entry point is ``edgeinspect_line_io.main:main``.
"""
