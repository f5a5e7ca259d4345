"""The PyTorch "loss functions and backpropagation" lessons, rebuilt in JAX: one runnable script each."""
