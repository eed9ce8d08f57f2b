"""The local stack (``edgeinspect up``) and the end-to-end demo (``edgeinspect demo``)."""
