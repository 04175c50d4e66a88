# crunch_add_plugin(<target> SOURCES <file>... [OUTPUT_DIRECTORY <dir>])
#
# Builds a crunchd task plugin: a shared module named <target>.so (no "lib"
# prefix) that crunchd's workers dlopen. It is compiled against crunch/plugin.h
# (the crunch::plugin_api target) with every symbol hidden, and linked with a
# version script that exports only the ABI's symbols (crunch_plugin_init and
# crunch_plugin_load_error) and with -z defs so a symbol the plugin forgot to
# link fails the build rather than the daemon's load.
#
# This file is used by crunchd's own build and installed with the plugin SDK
# (find_package(crunch) includes it), so in-tree and out-of-tree plugins are
# built the same way.
function(crunch_add_plugin target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUTPUT_DIRECTORY" "SOURCES")
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "crunch_add_plugin(${target}): no SOURCES given; "
            "usage: crunch_add_plugin(<target> SOURCES <file>... [OUTPUT_DIRECTORY <dir>])")
  endif()
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "crunch_add_plugin(${target}): unknown arguments "
            "'${arg_UNPARSED_ARGUMENTS}'; allowed: SOURCES, OUTPUT_DIRECTORY")
  endif()
  if(NOT TARGET crunch::plugin_api)
    message(FATAL_ERROR "crunch_add_plugin(${target}): crunch::plugin_api is not defined; "
            "call find_package(crunch CONFIG REQUIRED) first")
  endif()
  add_library(${target} MODULE ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE crunch::plugin_api)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Hidden visibility is not enough on its own: libstdc++ gives its templates
  # default visibility, so a C++ plugin would export the statics of the ones it
  # uses (std::to_string's digit table, as STB_GNU_UNIQUE symbols). A pattern,
  # not the two names: lld refuses a name the plugin does not define, and few
  # plugins define crunch_plugin_load_error.
  set(exports ${CMAKE_CURRENT_BINARY_DIR}/${target}.exports.map)
  file(CONFIGURE OUTPUT ${exports} CONTENT "{\n  global: crunch_plugin_*;\n  local: *;\n};\n")
  target_link_options(${target} PRIVATE LINKER:--version-script=${exports})
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${exports})
  if(arg_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${arg_OUTPUT_DIRECTORY})
  endif()
  # A sanitized build leaves the sanitizer runtime's symbols for the executable
  # to provide, which -z defs would refuse.
  if(NOT "${CMAKE_C_FLAGS} ${CMAKE_CXX_FLAGS} ${CRUNCH_SANITIZE}" MATCHES "sanitize|address|thread")
    target_link_options(${target} PRIVATE LINKER:-z,defs)
  endif()
endfunction()
