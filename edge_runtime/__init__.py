"""mnist-edge's device runtime: numpy and a TFLite interpreter, never TensorFlow."""
__version__ = "0.1.0"
