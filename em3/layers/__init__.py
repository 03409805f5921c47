"""Building blocks: embeddings, MLPs, interactions (DIN attention, DCN-v2 cross) and the FQ-Former."""

from em3.layers.attention import TargetAttention
from em3.layers.cross import CrossNetV2
from em3.layers.embeddings import FieldEmbeddings
from em3.layers.fqformer import FQFormer, MeanFusion
from em3.layers.mlp import MLP

__all__ = ["MLP", "CrossNetV2", "FQFormer", "FieldEmbeddings", "MeanFusion", "TargetAttention"]
