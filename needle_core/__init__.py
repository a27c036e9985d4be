"""needle: the reproducible companion to *Finding the Needle in the Haystack with
Convolutions* (d'Ascoli, Sagun, Bruna, Biroli, NeurIPS 2019).

Core API::

    efcn = needle_core.embed(cnn, (3, 32, 32), kind="fc")   # same function, free weights
    needle_core.deviation(efcn)                              # δ, δ_loc, δ_ws per layer
    cnn2 = needle_core.to_cnn(needle_core.project(efcn))     # back to the CNN subspace
"""
from .embedding import EmbeddingError, embed, embedded_layers, to_cnn
from .layers import EmbeddedConv, FCConv, LCConv
from .models import alexnet, cnn, fcn, vanilla_cnn
from .subspace import deviation, kernel_of, project
from .switch import switch
from . import interpolate

__all__ = ["EmbeddingError", "embed", "embedded_layers", "to_cnn", "EmbeddedConv", "FCConv", "LCConv",
           "alexnet", "cnn", "fcn", "vanilla_cnn", "deviation", "kernel_of", "project", "switch", "interpolate"]
__version__ = "0.1.0"
