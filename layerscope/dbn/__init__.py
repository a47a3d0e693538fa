"""Deep belief networks (Hinton et al. 2006) as Mohamed, Hinton & Penn 2012 and Erhan et al. 2009 used them."""

from .rbm import DBN, RBM, DBNNet, as_matrix

__all__ = ["RBM", "DBN", "DBNNet", "as_matrix"]
