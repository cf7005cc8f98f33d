"""Learning the surrogates: training data, load paths, training and evaluation.

* :mod:`.loadpath` -- random monotonic (training) and idealised (test) load paths.
* :mod:`.datagen` -- GRU training data: VEs x load paths labelled by ``taylor`` or the solver.
* :mod:`.train` -- training of :class:`polyfe2.constitutive.gru_network.GRUSurrogate`.
* :mod:`.evaluate` -- held-out error reports (paper 003, eq. 5).

This is the top layer below the command line: it may use every other layer, none uses it.
"""
