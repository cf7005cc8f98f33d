"""A whole run: the run configuration (DAMASK inputs, validated up front), the loop over load
steps and increments around the spectral solver, and the files a run writes.

* :mod:`.config` -- :class:`~.config.RunConfig` read from files or built in memory.
* :mod:`.runner` -- :func:`~.runner.run`: load steps, increments, cutbacks, outputs.
* :mod:`.outputs` -- DADF5, XDMF, CSV and PNG writers of a run.
"""
