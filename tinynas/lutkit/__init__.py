"""The on-board latency measuring kit: `tinynas lut measure` writes it (kit.py), one int8 TFLite
model per op signature (kit_models.py), built with the space's graph builder and the Keras mirror,
and compiled into a firmware project with tinynas.cgen and tinynas.firmware.

It sits above the space and the latency model (it measures their ops); the latency model
(tinynas.latency) only reads what `tinynas lut import` makes of the kit's log.
"""
