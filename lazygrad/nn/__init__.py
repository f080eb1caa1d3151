"""Neural-network building blocks; `lazygrad.nn.functional` holds the functional forms."""
from lazygrad.nn import functional
