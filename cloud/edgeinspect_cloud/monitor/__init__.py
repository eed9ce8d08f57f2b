"""Drift and quality monitoring: field telemetry and captured samples against the package baseline.

``edgeinspect monitor`` (:mod:`edgeinspect_cloud.commands.monitor`) is the entry point; the pieces:
:mod:`.baseline` (compute, load, combine baselines), :mod:`.field` (telemetry and captures),
:mod:`.analysis` (PSI and tests per feature and group), :mod:`.report` (folder with plots),
:mod:`.alerts` (MQTT, webhook).
"""
