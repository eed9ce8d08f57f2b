"""edgeinspect-camera: frames from a camera, a video or a replay folder into the line's Redis stream.

See services/camera/README.md; the entry point is ``edgeinspect_camera.main:main``.
"""
