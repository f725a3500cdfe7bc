"""jaxloss: every loss a JAX user needs, as pure, checked, numerically safe functions.

Losses live in one module per task family and are re-exported here flat::

    jaxloss.huber_loss                     # flat
    jaxloss.regression.huber_loss          # by family
    jaxloss.get("huber")                   # by registry name or Keras alias
"""

from jaxloss import regression as regression
from jaxloss import classification as classification
from jaxloss import segmentation as segmentation
from jaxloss import boxes as boxes
from jaxloss import embedding as embedding
from jaxloss import ranking as ranking
from jaxloss import sequence as sequence
from jaxloss import text as text
from jaxloss import generative as generative
from jaxloss import robust as robust
from jaxloss import large_vocab as large_vocab
from jaxloss import preference as preference
from jaxloss import distillation as distillation
from jaxloss import routing as routing
from jaxloss import self_supervised as self_supervised
from jaxloss import diffusion as diffusion
from jaxloss import testing as testing
from jaxloss._reduction import reduce as reduce
from jaxloss._registry import available as available
from jaxloss._registry import get as get
from jaxloss._registry import register as register
from jaxloss._toolkit import checked as checked
from jaxloss._toolkit import combine as combine
from jaxloss._toolkit import make_loss as make_loss
from jaxloss.regression import squared_error as squared_error
from jaxloss.regression import l2_loss as l2_loss
from jaxloss.regression import absolute_error as absolute_error
from jaxloss.regression import huber_loss as huber_loss
from jaxloss.regression import smooth_l1_loss as smooth_l1_loss
from jaxloss.regression import log_cosh as log_cosh
from jaxloss.regression import absolute_percentage_error as absolute_percentage_error
from jaxloss.regression import squared_log_error as squared_log_error
from jaxloss.regression import quantile_loss as quantile_loss
from jaxloss.regression import poisson_loss as poisson_loss
from jaxloss.regression import poisson_nll_loss as poisson_nll_loss
from jaxloss.regression import gaussian_nll_loss as gaussian_nll_loss
from jaxloss.classification import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from jaxloss.classification import binary_cross_entropy as binary_cross_entropy
from jaxloss.classification import sigmoid_focal_loss as sigmoid_focal_loss
from jaxloss.classification import softmax_cross_entropy as softmax_cross_entropy
from jaxloss.classification import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from jaxloss.classification import nll_loss as nll_loss
from jaxloss.classification import softmax_focal_loss as softmax_focal_loss
from jaxloss.classification import softmax_focal_loss_with_integer_labels as softmax_focal_loss_with_integer_labels
from jaxloss.classification import poly_loss_cross_entropy as poly_loss_cross_entropy
from jaxloss.classification import hinge_loss as hinge_loss
from jaxloss.classification import squared_hinge_loss as squared_hinge_loss
from jaxloss.classification import multiclass_hinge_loss as multiclass_hinge_loss
from jaxloss.classification import multi_margin_loss as multi_margin_loss
from jaxloss.classification import soft_margin_loss as soft_margin_loss
from jaxloss.classification import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from jaxloss.classification import kl_divergence as kl_divergence
from jaxloss.classification import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from jaxloss.classification import jensen_shannon_divergence as jensen_shannon_divergence
from jaxloss.classification import smooth_labels as smooth_labels
from jaxloss.classification import class_balanced_weights as class_balanced_weights
from jaxloss.classification import z_loss as z_loss
from jaxloss.segmentation import dice_loss as dice_loss
from jaxloss.segmentation import jaccard_loss as jaccard_loss
from jaxloss.segmentation import tversky_loss as tversky_loss
from jaxloss.segmentation import focal_tversky_loss as focal_tversky_loss
from jaxloss.segmentation import generalized_dice_loss as generalized_dice_loss
from jaxloss.segmentation import lovasz_hinge_loss as lovasz_hinge_loss
from jaxloss.segmentation import lovasz_softmax_loss as lovasz_softmax_loss
from jaxloss.boxes import box_convert as box_convert
from jaxloss.boxes import box_iou as box_iou
from jaxloss.boxes import iou_loss as iou_loss
from jaxloss.boxes import giou_loss as giou_loss
from jaxloss.boxes import diou_loss as diou_loss
from jaxloss.boxes import ciou_loss as ciou_loss
from jaxloss.boxes import eiou_loss as eiou_loss
from jaxloss.embedding import cosine_similarity as cosine_similarity
from jaxloss.embedding import cosine_distance as cosine_distance
from jaxloss.embedding import cosine_embedding_loss as cosine_embedding_loss
from jaxloss.embedding import hinge_embedding_loss as hinge_embedding_loss
from jaxloss.embedding import triplet_margin_loss as triplet_margin_loss
from jaxloss.embedding import contrastive_loss as contrastive_loss
from jaxloss.embedding import batch_hard_triplet_loss as batch_hard_triplet_loss
from jaxloss.embedding import ntxent_loss as ntxent_loss
from jaxloss.embedding import supervised_contrastive_loss as supervised_contrastive_loss
from jaxloss.embedding import info_nce_loss as info_nce_loss
from jaxloss.embedding import clip_loss as clip_loss
from jaxloss.embedding import siglip_loss as siglip_loss
from jaxloss.embedding import arcface_loss as arcface_loss
from jaxloss.embedding import cosface_loss as cosface_loss
from jaxloss.embedding import circle_loss as circle_loss
from jaxloss.embedding import multi_similarity_loss as multi_similarity_loss
from jaxloss.embedding import proxy_anchor_loss as proxy_anchor_loss
from jaxloss.embedding import proxy_nca_loss as proxy_nca_loss
from jaxloss.embedding import npairs_loss as npairs_loss
from jaxloss.embedding import lifted_structure_loss as lifted_structure_loss
from jaxloss.embedding import soft_triple_loss as soft_triple_loss
from jaxloss.embedding import sub_center_arcface_loss as sub_center_arcface_loss
from jaxloss.ranking import bpr_loss as bpr_loss
from jaxloss.ranking import top1_loss as top1_loss
from jaxloss.ranking import bpr_max_loss as bpr_max_loss
from jaxloss.ranking import top1_max_loss as top1_max_loss
from jaxloss.ranking import margin_ranking_loss as margin_ranking_loss
from jaxloss.ranking import ranking_softmax_loss as ranking_softmax_loss
from jaxloss.ranking import listmle_loss as listmle_loss
from jaxloss.ranking import pairwise_hinge_loss as pairwise_hinge_loss
from jaxloss.ranking import pairwise_logistic_loss as pairwise_logistic_loss
from jaxloss.ranking import approx_ndcg_loss as approx_ndcg_loss
from jaxloss.sequence import ctc_loss as ctc_loss
from jaxloss.text import bleu as bleu
from jaxloss.text import corpus_bleu as corpus_bleu
from jaxloss.text import rouge_n as rouge_n
from jaxloss.text import rouge_l as rouge_l
from jaxloss.text import meteor as meteor
from jaxloss.text import minimum_risk_loss as minimum_risk_loss
from jaxloss.generative import reconstruction_error as reconstruction_error
from jaxloss.generative import gaussian_kl_divergence as gaussian_kl_divergence
from jaxloss.generative import elbo_loss as elbo_loss
from jaxloss.robust import general_robust_loss as general_robust_loss
from jaxloss.robust import adaptive_robust_nll as adaptive_robust_nll
from jaxloss.robust import uncertainty_weighted_sum as uncertainty_weighted_sum
from jaxloss.large_vocab import linear_softmax_cross_entropy as linear_softmax_cross_entropy
from jaxloss.preference import sequence_log_probs as sequence_log_probs
from jaxloss.preference import dpo_rewards as dpo_rewards
from jaxloss.preference import dpo_loss as dpo_loss
from jaxloss.preference import simpo_loss as simpo_loss
from jaxloss.preference import cpo_loss as cpo_loss
from jaxloss.preference import orpo_loss as orpo_loss
from jaxloss.preference import kto_loss as kto_loss
from jaxloss.distillation import knowledge_distillation_loss as knowledge_distillation_loss
from jaxloss.distillation import generalized_jsd_loss as generalized_jsd_loss
from jaxloss.routing import load_balancing_loss as load_balancing_loss
from jaxloss.routing import router_z_loss as router_z_loss
from jaxloss.self_supervised import byol_loss as byol_loss
from jaxloss.self_supervised import simsiam_loss as simsiam_loss
from jaxloss.self_supervised import barlow_twins_loss as barlow_twins_loss
from jaxloss.self_supervised import vicreg_loss as vicreg_loss
from jaxloss.self_supervised import dino_loss as dino_loss
from jaxloss.self_supervised import dino_center_update as dino_center_update
from jaxloss.diffusion import diffusion_loss as diffusion_loss
from jaxloss.classification import convex_kl_divergence as convex_kl_divergence
from jaxloss.classification import sparsemax_loss as sparsemax_loss
from jaxloss.classification import perceptron_loss as perceptron_loss
from jaxloss.classification import multiclass_perceptron_loss as multiclass_perceptron_loss
from jaxloss.classification import multiclass_sparsemax_loss as multiclass_sparsemax_loss
from jaxloss.classification import make_fenchel_young_loss as make_fenchel_young_loss
from jaxloss.classification import generalized_cross_entropy as generalized_cross_entropy
from jaxloss.classification import multilabel_margin_loss as multilabel_margin_loss
from jaxloss.segmentation import dice_ce_loss as dice_ce_loss
from jaxloss.segmentation import dice_focal_loss as dice_focal_loss
from jaxloss.segmentation import soft_cldice_loss as soft_cldice_loss
from jaxloss.segmentation import hausdorff_dt_loss as hausdorff_dt_loss
from jaxloss.segmentation import ssim_loss as ssim_loss
from jaxloss.embedding import triplet_margin_with_distance_loss as triplet_margin_with_distance_loss
from jaxloss.ranking import poly1_softmax_loss as poly1_softmax_loss
from jaxloss.ranking import unique_softmax_loss as unique_softmax_loss
from jaxloss.ranking import pairwise_soft_zero_one_loss as pairwise_soft_zero_one_loss
from jaxloss.ranking import pairwise_mse_loss as pairwise_mse_loss
from jaxloss.ranking import pairwise_qr_loss as pairwise_qr_loss
from jaxloss.ranking import pointwise_sigmoid_loss as pointwise_sigmoid_loss
from jaxloss.ranking import pointwise_mse_loss as pointwise_mse_loss
from jaxloss.ranking import dcg_metric as dcg_metric
from jaxloss.ranking import ndcg_metric as ndcg_metric
from jaxloss.ranking import mrr_metric as mrr_metric
from jaxloss.ranking import precision_metric as precision_metric
from jaxloss.ranking import recall_metric as recall_metric
from jaxloss.ranking import ap_metric as ap_metric
from jaxloss.large_vocab import linear_sequence_log_probs as linear_sequence_log_probs
from jaxloss.distillation import linear_knowledge_distillation_loss as linear_knowledge_distillation_loss
from jaxloss.distillation import linear_generalized_jsd_loss as linear_generalized_jsd_loss

__version__ = "0.1.0"

__all__ = [
    # building your own
    "reduce", "available", "get", "register", "checked", "combine", "make_loss",
    # regression
    "squared_error", "l2_loss", "absolute_error", "huber_loss", "smooth_l1_loss", "log_cosh",
    "absolute_percentage_error", "squared_log_error", "quantile_loss", "poisson_loss", "poisson_nll_loss",
    "gaussian_nll_loss",
    # classification
    "sigmoid_binary_cross_entropy", "binary_cross_entropy", "sigmoid_focal_loss", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "nll_loss", "softmax_focal_loss",
    "softmax_focal_loss_with_integer_labels", "poly_loss_cross_entropy", "hinge_loss", "squared_hinge_loss",
    "multiclass_hinge_loss", "multi_margin_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
    "kl_divergence", "kl_divergence_with_log_targets", "jensen_shannon_divergence", "smooth_labels",
    "class_balanced_weights", "z_loss",
    # segmentation
    "dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "generalized_dice_loss",
    "lovasz_hinge_loss", "lovasz_softmax_loss",
    # boxes
    "box_convert", "box_iou", "iou_loss", "giou_loss", "diou_loss", "ciou_loss", "eiou_loss",
    # embedding
    "cosine_similarity", "cosine_distance", "cosine_embedding_loss", "hinge_embedding_loss",
    "triplet_margin_loss", "contrastive_loss", "batch_hard_triplet_loss", "ntxent_loss",
    "supervised_contrastive_loss", "info_nce_loss", "clip_loss", "siglip_loss", "arcface_loss",
    "cosface_loss", "circle_loss", "multi_similarity_loss", "proxy_anchor_loss", "proxy_nca_loss", "npairs_loss",
    "lifted_structure_loss", "soft_triple_loss", "sub_center_arcface_loss",
    # ranking
    "bpr_loss", "top1_loss", "bpr_max_loss", "top1_max_loss", "margin_ranking_loss", "ranking_softmax_loss",
    "listmle_loss", "pairwise_hinge_loss", "pairwise_logistic_loss", "approx_ndcg_loss",
    # sequence
    "ctc_loss",
    # text
    "bleu", "corpus_bleu", "rouge_n", "rouge_l", "meteor", "minimum_risk_loss",
    # generative
    "reconstruction_error", "gaussian_kl_divergence", "elbo_loss",
    # robust
    "general_robust_loss", "adaptive_robust_nll", "uncertainty_weighted_sum",
    # large_vocab
    "linear_softmax_cross_entropy",
    # preference
    "sequence_log_probs", "dpo_rewards", "dpo_loss", "simpo_loss", "cpo_loss", "orpo_loss", "kto_loss",
    # distillation
    "knowledge_distillation_loss", "generalized_jsd_loss",
    # routing (mixture of experts)
    "load_balancing_loss", "router_z_loss",
    # self-supervised
    "byol_loss", "simsiam_loss", "barlow_twins_loss", "vicreg_loss", "dino_loss", "dino_center_update",
    # diffusion
    "diffusion_loss",
    # classification (second part)
    "convex_kl_divergence", "sparsemax_loss", "perceptron_loss", "multiclass_perceptron_loss",
    "multiclass_sparsemax_loss", "make_fenchel_young_loss", "generalized_cross_entropy",
    "multilabel_margin_loss",
    # segmentation (second part)
    "dice_ce_loss", "dice_focal_loss", "soft_cldice_loss", "hausdorff_dt_loss", "ssim_loss",
    # embedding (second part)
    "triplet_margin_with_distance_loss",
    # ranking (second part)
    "poly1_softmax_loss", "unique_softmax_loss", "pairwise_soft_zero_one_loss", "pairwise_mse_loss",
    "pairwise_qr_loss", "pointwise_sigmoid_loss", "pointwise_mse_loss", "dcg_metric", "ndcg_metric",
    "mrr_metric", "precision_metric", "recall_metric", "ap_metric",
    # large_vocab (second part)
    "linear_sequence_log_probs",
    # distillation (second part)
    "linear_knowledge_distillation_loss", "linear_generalized_jsd_loss",
]
