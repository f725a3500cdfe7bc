"""jaxloss: every loss a JAX user needs, as pure, checked, numerically safe functions.

Losses live in one module per task family and are re-exported here flat::

    jaxloss.huber_loss                     # flat
    jaxloss.regression.huber_loss          # by family
    jaxloss.get("huber")                   # by registry name or Keras alias
"""

from jaxloss import classification as classification
from jaxloss import regression as regression
from jaxloss import testing as testing
from jaxloss._reduction import reduce as reduce
from jaxloss._registry import available as available
from jaxloss._registry import get as get
from jaxloss._registry import register as register
from jaxloss._toolkit import checked as checked
from jaxloss._toolkit import combine as combine
from jaxloss._toolkit import make_loss as make_loss
from jaxloss.classification import binary_cross_entropy as binary_cross_entropy
from jaxloss.classification import class_balanced_weights as class_balanced_weights
from jaxloss.classification import hinge_loss as hinge_loss
from jaxloss.classification import jensen_shannon_divergence as jensen_shannon_divergence
from jaxloss.classification import kl_divergence as kl_divergence
from jaxloss.classification import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from jaxloss.classification import multi_margin_loss as multi_margin_loss
from jaxloss.classification import multiclass_hinge_loss as multiclass_hinge_loss
from jaxloss.classification import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from jaxloss.classification import nll_loss as nll_loss
from jaxloss.classification import poly_loss_cross_entropy as poly_loss_cross_entropy
from jaxloss.classification import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from jaxloss.classification import sigmoid_focal_loss as sigmoid_focal_loss
from jaxloss.classification import smooth_labels as smooth_labels
from jaxloss.classification import soft_margin_loss as soft_margin_loss
from jaxloss.classification import softmax_cross_entropy as softmax_cross_entropy
from jaxloss.classification import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from jaxloss.classification import softmax_focal_loss as softmax_focal_loss
from jaxloss.classification import softmax_focal_loss_with_integer_labels as softmax_focal_loss_with_integer_labels
from jaxloss.classification import squared_hinge_loss as squared_hinge_loss
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
    # toolkit
    "available", "checked", "combine", "get", "make_loss", "reduce", "register",
    # regression
    "absolute_error", "absolute_percentage_error", "gaussian_nll_loss", "huber_loss", "l2_loss", "log_cosh",
    "poisson_loss", "poisson_nll_loss", "quantile_loss", "smooth_l1_loss", "squared_error", "squared_log_error",
    # classification
    "binary_cross_entropy", "class_balanced_weights", "hinge_loss", "jensen_shannon_divergence",
    "kl_divergence", "kl_divergence_with_log_targets", "multi_margin_loss", "multiclass_hinge_loss",
    "multilabel_soft_margin_loss", "nll_loss", "poly_loss_cross_entropy", "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss", "smooth_labels", "soft_margin_loss", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "softmax_focal_loss", "softmax_focal_loss_with_integer_labels",
    "squared_hinge_loss",

]
