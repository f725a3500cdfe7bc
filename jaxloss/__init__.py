"""jaxloss: every loss a JAX user needs, as pure, checked, numerically safe functions.

Losses live in one module per task family and are re-exported here flat::

    jaxloss.huber_loss                     # flat
    jaxloss.regression.huber_loss          # by family
    jaxloss.get("huber")                   # by registry name or Keras alias
"""

from jaxloss import regression as regression
from jaxloss import testing as testing
from jaxloss._reduction import reduce as reduce
from jaxloss._registry import available as available
from jaxloss._registry import get as get
from jaxloss._registry import register as register
from jaxloss._toolkit import checked as checked
from jaxloss._toolkit import combine as combine
from jaxloss._toolkit import make_loss as make_loss
from jaxloss.regression import absolute_error as absolute_error
from jaxloss.regression import absolute_percentage_error as absolute_percentage_error
from jaxloss.regression import gaussian_nll_loss as gaussian_nll_loss
from jaxloss.regression import huber_loss as huber_loss
from jaxloss.regression import l2_loss as l2_loss
from jaxloss.regression import log_cosh as log_cosh
from jaxloss.regression import poisson_loss as poisson_loss
from jaxloss.regression import poisson_nll_loss as poisson_nll_loss
from jaxloss.regression import quantile_loss as quantile_loss
from jaxloss.regression import smooth_l1_loss as smooth_l1_loss
from jaxloss.regression import squared_error as squared_error
from jaxloss.regression import squared_log_error as squared_log_error

__version__ = "0.1.0"

__all__ = [
    "absolute_error",
    "absolute_percentage_error",
    "available",
    "checked",
    "combine",
    "gaussian_nll_loss",
    "get",
    "huber_loss",
    "l2_loss",
    "log_cosh",
    "make_loss",
    "poisson_loss",
    "poisson_nll_loss",
    "quantile_loss",
    "reduce",
    "register",
    "smooth_l1_loss",
    "squared_error",
    "squared_log_error",
]
