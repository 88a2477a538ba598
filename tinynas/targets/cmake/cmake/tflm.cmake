# TensorFlow Lite Micro as the static library `tflm`, with the flags TFLM requires.
#
# TFLM_DIR is a tree made by tflite-micro's create_tflm_tree.py. A tree with
# kernels/cmsis_nn is a Cortex-M tree: it is compiled with this board's core flags
# (cmake/core.cmake, applied by cmake/arm-none-eabi.cmake) and the CMSIS device header
# that TFLM's cortex_m_generic micro_time.cc needs for its cycle counter.
# TFLM_LIBRARY links a libtflm.a built before from the same tree with these same flags.
# This file has no model-specific content, so a library built with it serves any model.

set(TFLM_DIR "" CACHE PATH "TFLM tree from create_tflm_tree.py (holds tensorflow/ and third_party/)")
set(TFLM_LIBRARY "" CACHE FILEPATH "Optional prebuilt libtflm.a of the same tree and flags; built from TFLM_DIR when empty")
# signal/ holds TFLM's audio signal-processing ops (tflm_signal::Register_*), which a
# model's builtin-op resolver never registers; leaving them out saves a fifth of the build.
option(TFLM_SIGNAL "also compile TFLM's signal/ library (audio front-end ops)" OFF)
# Four fifths of TFLM's build is kernels/, one file per operator at several seconds each,
# and a model needs a handful of them; the linker would drop the rest anyway. TFLM_OPS
# names the builtin operators whose kernels are compiled (the generated CMakeLists.txt
# sets the model's; -DTFLM_OPS=A;B overrides it); ALL compiles every kernel, as a library
# meant for many models needs.
if(NOT DEFINED TFLM_OPS)
  set(TFLM_OPS "ALL")
endif()

if(NOT TFLM_DIR OR NOT EXISTS "${TFLM_DIR}/tensorflow/lite/micro/micro_interpreter.h")
  message(FATAL_ERROR
    "Set -DTFLM_DIR=<dir> to a TFLM source tree (see README.md); "
    "'${TFLM_DIR}' has no tensorflow/lite/micro/micro_interpreter.h")
endif()

if(EXISTS "${TFLM_DIR}/tensorflow/lite/micro/kernels/cmsis_nn")
  set(TFLM_CMSIS_NN ON)
else()
  set(TFLM_CMSIS_NN OFF)
endif()
if(TFLM_CMSIS_NN AND NOT CMAKE_CROSSCOMPILING)
  message(FATAL_ERROR "${TFLM_DIR} is a Cortex-M (CMSIS-NN) tree; configure with "
    "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake (the default for such a tree) or use a host tree")
endif()

set(TFLM_INCLUDE_DIRS "${TFLM_DIR}")
set(_tflm_subdirs
    third_party/flatbuffers/include third_party/gemmlowp third_party/ruy third_party/kissfft)
if(TFLM_CMSIS_NN)
  list(APPEND _tflm_subdirs
      third_party/cmsis third_party/cmsis_nn third_party/cmsis_nn/Include
      third_party/cmsis/CMSIS/Core/Include
      third_party/cmsis/Cortex_DFP/Device/${TINYNAS_DEVICE}/Include)
endif()
foreach(sub ${_tflm_subdirs})
  if(EXISTS "${TFLM_DIR}/${sub}")
    list(APPEND TFLM_INCLUDE_DIRS "${TFLM_DIR}/${sub}")
  endif()
endforeach()

# TF_LITE_STATIC_MEMORY changes TfLiteTensor's layout: library and app must agree.
set(TFLM_DEFINITIONS TF_LITE_STATIC_MEMORY TF_LITE_DISABLE_X86_NEON)
if(TFLM_CMSIS_NN)
  if(NOT EXISTS "${TFLM_DIR}/third_party/cmsis/Cortex_DFP/Device/${TINYNAS_DEVICE}/Include/${TINYNAS_DEVICE}.h")
    message(FATAL_ERROR "${TFLM_DIR} lacks the CMSIS device header ${TINYNAS_DEVICE}.h "
      "(third_party/cmsis/Cortex_DFP/Device/${TINYNAS_DEVICE}/Include); TFLM's micro_time.cc needs it. "
      "Copy Device/${TINYNAS_DEVICE}/Include from ARM-software/Cortex_DFP there.")
  endif()
  list(APPEND TFLM_DEFINITIONS CMSIS_NN ARM_NN_ENABLE_F16=0 ARM_NN_ENABLE_F32=0 TF_LITE_MCU_DEBUG_LOG
       ${TINYNAS_CORE_DEFINES} "CMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE=\"${TINYNAS_DEVICE}.h\"")
else()
  list(APPEND TFLM_DEFINITIONS TF_LITE_USE_CTIME)  # the host timer uses clock()
endif()

# TFLM is built without exceptions, RTTI or thread-safe statics; its headers assume it.
set(TFLM_COMPILE_OPTIONS
    $<$<COMPILE_LANGUAGE:CXX>:-fno-rtti -fno-exceptions -fno-threadsafe-statics>
    -ffunction-sections -fdata-sections)
if(TFLM_CMSIS_NN)
  list(APPEND TFLM_COMPILE_OPTIONS -funsigned-char)
endif()
if(NOT CMAKE_BUILD_TYPE)
  list(APPEND TFLM_COMPILE_OPTIONS -O2)  # TFLM's own Makefile default
endif()

# Three quarters of compiling one TFLM source is parsing the same headers (the flatbuffers
# schema alone is 26,000 lines). Parsed once into a precompiled header, a C++ file compiles
# about 4x faster (micro_allocator.cc 8.5 s -> 2.1 s for a Cortex-M7), a Cortex-M7 library
# for the tests' operators in 94 s instead of 170 s with make -j2, and the object code is the
# same: 90,594 instructions, identical (only __FILE__ strings move). C sources (CMSIS-NN)
# do without.
option(TFLM_PCH "precompile TFLM's common headers (same code; the library builds about 1.8x faster)" ON)
set(_tflm_pch_headers
    tensorflow/lite/c/common.h
    tensorflow/lite/schema/schema_generated.h
    tensorflow/lite/kernels/internal/types.h
    tensorflow/lite/kernels/internal/common.h
    tensorflow/lite/kernels/kernel_util.h
    tensorflow/lite/micro/micro_context.h
    tensorflow/lite/micro/kernels/kernel_util.h)

# Keeps, of the kernels/ sources in LIST_VAR, those that define Register_<OP>() for an
# op in OPS, the <stem>_common.cc of each kept <stem>.cc, and every kernels/ source that
# registers nothing (helpers shared by all kernels); other sources stay. TFLM names each
# kernel's registration after its builtin operator (MicroMutableOpResolver::AddConv2D
# calls Register_CONV_2D), which is what makes the match exact.
function(tflm_select_kernels list_var ops)
  set(kept "")
  set(helpers "")
  set(kept_stems "")
  set(found "")
  foreach(f IN LISTS ${list_var})
    if(NOT f MATCHES "/tensorflow/lite/micro/kernels/")
      list(APPEND kept "${f}")
      continue()
    endif()
    file(STRINGS "${f}" defs REGEX "Register_[A-Z0-9_]+\\(\\) *\\{")
    if(NOT defs)
      list(APPEND helpers "${f}")
      continue()
    endif()
    foreach(op IN LISTS ops)
      string(FIND "${defs}" " Register_${op}()" at)
      if(at GREATER -1)
        list(APPEND kept "${f}")
        get_filename_component(stem "${f}" NAME_WE)
        list(APPEND kept_stems "${stem}")
        list(APPEND found "${op}")
      endif()
    endforeach()
  endforeach()
  foreach(f IN LISTS helpers)
    get_filename_component(stem "${f}" NAME_WE)
    if(stem MATCHES "^(.+)_common$" AND NOT CMAKE_MATCH_1 IN_LIST kept_stems)
      continue()  # the shared code of a kernel left out
    endif()
    list(APPEND kept "${f}")
  endforeach()
  foreach(op IN LISTS ops)
    if(NOT op IN_LIST found)
      message(FATAL_ERROR "no kernel in ${TFLM_DIR} defines Register_${op}(); "
        "name TFLM builtin operators in TFLM_OPS, or configure with -DTFLM_OPS=ALL")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES kept)
  set(${list_var} "${kept}" PARENT_SCOPE)
endfunction()

if(TFLM_LIBRARY)
  add_library(tflm STATIC IMPORTED)
  set_target_properties(tflm PROPERTIES IMPORTED_LOCATION "${TFLM_LIBRARY}")
  target_include_directories(tflm INTERFACE ${TFLM_INCLUDE_DIRS})
  target_compile_definitions(tflm INTERFACE ${TFLM_DEFINITIONS})
  target_compile_options(tflm INTERFACE ${TFLM_COMPILE_OPTIONS})
else()
  file(GLOB_RECURSE TFLM_SOURCES CONFIGURE_DEPENDS
    "${TFLM_DIR}/tensorflow/*.cc" "${TFLM_DIR}/tensorflow/*.c"
    "${TFLM_DIR}/third_party/*.cc" "${TFLM_DIR}/third_party/*.c")
  if(TFLM_SIGNAL)
    file(GLOB_RECURSE _tflm_signal CONFIGURE_DEPENDS "${TFLM_DIR}/signal/*.cc" "${TFLM_DIR}/signal/*.c")
    list(APPEND TFLM_SOURCES ${_tflm_signal})
  endif()
  list(FILTER TFLM_SOURCES EXCLUDE REGEX "_test\\.cc$")
  if(NOT TFLM_OPS STREQUAL "ALL")
    tflm_select_kernels(TFLM_SOURCES "${TFLM_OPS}")
  endif()
  add_library(tflm STATIC ${TFLM_SOURCES})
  target_include_directories(tflm PUBLIC ${TFLM_INCLUDE_DIRS})
  target_compile_definitions(tflm PUBLIC ${TFLM_DEFINITIONS})
  target_compile_options(tflm PUBLIC ${TFLM_COMPILE_OPTIONS})
  set_target_properties(tflm PROPERTIES OUTPUT_NAME tflm C_STANDARD 17 CXX_STANDARD 17)
  if(TFLM_PCH)
    foreach(h IN LISTS _tflm_pch_headers)
      if(EXISTS "${TFLM_DIR}/${h}")
        target_precompile_headers(tflm PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:${TFLM_DIR}/${h}>")
      endif()
    endforeach()
  endif()
endif()

if(NOT TFLM_CMSIS_NN)
  target_link_libraries(tflm INTERFACE m)
endif()
