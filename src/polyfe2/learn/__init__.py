"""Learning the surrogates and the foundation model: training data, load paths, training,
evaluation and inference.

* :mod:`.loadpath` -- random monotonic (training) and idealised (test) load paths.
* :mod:`.datagen` -- GRU training data: VEs x load paths labelled by ``taylor`` or the solver.
* :mod:`.train` -- training of :class:`polyfe2.constitutive.gru_network.GRUSurrogate`.
* :mod:`.evaluate` -- held-out error reports (paper 003, eq. 5).
* :mod:`.chunked` -- data sets computed in resumable chunks by worker processes (HDF5).
* :mod:`.fm_data` -- the foundation model's RVEs over the texture hull, with stiffness labels.
* :mod:`.mae` -- the 3D masked autoencoder (paper 000) and its checkpoints.
* :mod:`.fm_train` -- its pretraining (eq. 5) and fine-tuning (stiffness head; ODMN head, eq. 13).
* :mod:`.fm_infer` -- a microstructure -> an ODMN parameter set (or its stiffness).
* :mod:`.odmn_fit`, :mod:`.odmn_validation` -- ODMNs fitted per RVE and their validation.

This is the top layer below the command line: it may use every other layer, none uses it.
"""
