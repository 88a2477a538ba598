# The board's core, as tinynas measured it: {{board_name}} ({{core}}, FPU {{fpu}}).
# These flags must match between the TFLM library and the application; edit them
# here only, and rebuild TFLM too.
set(TINYNAS_CPU_FLAGS "{{cpu_flags}}")
set(TINYNAS_DEVICE "{{device}}")
set(TINYNAS_CORE_DEFINES {{core_defines}})
