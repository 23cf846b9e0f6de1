"""End-to-end recipes (``physlm run ...``) and the ``physlm`` command line."""
