"""The JSON API behind the page: routes, images, the SSE stream; shapes live in ``schemas``."""
