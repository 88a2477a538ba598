# Toolchain file: Arm GNU toolchain (arm-none-eabi-gcc) for the board's core.
# The CMakeLists.txt picks it by default for a Cortex-M (CMSIS-NN) TFLM tree.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(TINYNAS_TOOLCHAIN_PREFIX "arm-none-eabi-" CACHE STRING "prefix of the Arm GNU toolchain's programs")
set(CMAKE_C_COMPILER "${TINYNAS_TOOLCHAIN_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${TINYNAS_TOOLCHAIN_PREFIX}g++")
set(CMAKE_ASM_COMPILER "${TINYNAS_TOOLCHAIN_PREFIX}gcc")
set(CMAKE_AR "${TINYNAS_TOOLCHAIN_PREFIX}ar" CACHE FILEPATH "")
set(CMAKE_SIZE "${TINYNAS_TOOLCHAIN_PREFIX}size" CACHE FILEPATH "")
# Compiler checks build a static library: a bare-metal executable needs startup code.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

include("${CMAKE_CURRENT_LIST_DIR}/core.cmake")
set(CMAKE_C_FLAGS_INIT "${TINYNAS_CPU_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${TINYNAS_CPU_FLAGS}")
set(CMAKE_ASM_FLAGS_INIT "${TINYNAS_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${TINYNAS_CPU_FLAGS} --specs=nano.specs -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
