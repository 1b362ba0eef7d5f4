"""``tiny-diffusion serve``: a local web app over a folder of runs (the list of runs with their figures and metrics,
each run's interactive page) and a playground that trains on points drawn with the mouse, live.

It needs the ``web`` extra (FastAPI and uvicorn): ``pip install "tiny-diffusion[web]"``. ``runs`` (what is listed
and served) and ``training`` (the training process) use neither; ``app`` builds the FastAPI application.
"""

INSTALL_HINT = 'tiny-diffusion serve needs the web extra: pip install "tiny-diffusion[web]"'
