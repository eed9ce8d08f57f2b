"""edgeinspect-uploader: capture spool on disk and resumable, journaled sync to S3 (see README.md).

Public pieces others may use: ``manifest.read_day``/``read_range`` (read a line's daily manifest
without listing capture keys), ``layout`` (the key layout), ``service.UploaderService.build``.
"""
