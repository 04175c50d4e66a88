# crunch_add_plugin(<target> SOURCES <file>... [OUTPUT_DIRECTORY <dir>])
#
# Builds a crunchd task plugin: a shared module named <target>.so (no "lib"
# prefix) that crunchd's workers dlopen. It is compiled against crunch/plugin.h
# (the crunch::plugin_api target) with every symbol hidden except the ones
# marked CRUNCH_PLUGIN_EXPORT, and linked with -z defs so a symbol the plugin
# forgot to link fails the build rather than the daemon's load.
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
  if(arg_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${arg_OUTPUT_DIRECTORY})
  endif()
  # A sanitized build leaves the sanitizer runtime's symbols for the executable
  # to provide, which -z defs would refuse.
  if(NOT "${CMAKE_C_FLAGS} ${CMAKE_CXX_FLAGS} ${CRUNCH_SANITIZE}" MATCHES "sanitize|address|thread")
    target_link_options(${target} PRIVATE LINKER:-z,defs)
  endif()
endfunction()
