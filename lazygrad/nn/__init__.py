"""Neural-network building blocks; `lazygrad.nn.functional` holds the functional forms."""
from lazygrad.nn import functional
from lazygrad.nn import init
from lazygrad.nn import utils
from lazygrad.nn.module import Module, Parameter
from lazygrad.nn.layers import (
  Identity, Sequential, ModuleList, ModuleDict,
  Linear, Conv1d, Conv2d, ConvTranspose2d,
  BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, RMSNorm,
  Embedding, Dropout,
  ReLU, LeakyReLU, GELU, SiLU, Tanh, Sigmoid, Softmax, LogSoftmax,
  MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Unflatten,
  MultiheadAttention,
  L1Loss, MSELoss, CTCLoss, NLLLoss, CrossEntropyLoss, BCEWithLogitsLoss,
  PairwiseDistance, ChannelShuffle, MaxUnpool1d, MaxUnpool2d, MaxUnpool3d,
)
from lazygrad.nn.recurrent import RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell
from lazygrad.nn import parallel  # noqa: E402  (DistributedDataParallel; mpi4py loads only with a process group)
