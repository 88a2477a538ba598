"""tinynas: find a network that provably fits a microcontroller, and ship it to TFLite Micro."""

__version__ = "0.1.0"
