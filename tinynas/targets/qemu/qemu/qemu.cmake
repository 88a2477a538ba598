# QEMU {{qemu_machine}} build: start-up code, the linker script for {{board_name}}'s memory
# and a `run` target. Included by CMakeLists.txt when this folder exists.
target_sources({{name}}_app PRIVATE ${CMAKE_CURRENT_LIST_DIR}/startup.c)
target_compile_definitions({{name}}_app PRIVATE TINYNAS_QEMU TINYNAS_SELFTEST)
target_link_options({{name}}_app PRIVATE
  -nostartfiles -T${CMAKE_CURRENT_LIST_DIR}/memory.ld
  -Wl,-Map=${CMAKE_CURRENT_BINARY_DIR}/{{name}}_app.map -Wl,--no-warn-rwx-segments)
set_target_properties({{name}}_app PROPERTIES SUFFIX ".elf"
  LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/memory.ld)
add_custom_command(TARGET {{name}}_app POST_BUILD
  COMMAND ${CMAKE_SIZE} $<TARGET_FILE:{{name}}_app> VERBATIM)

set(QEMU_SYSTEM_ARM qemu-system-arm CACHE STRING "QEMU system emulator for Arm")
add_custom_target(run
  COMMAND ${QEMU_SYSTEM_ARM} -M {{qemu_machine}} -nographic -semihosting -monitor none -serial none
          -icount shift=0 -kernel $<TARGET_FILE:{{name}}_app>
  DEPENDS {{name}}_app USES_TERMINAL VERBATIM)
