# Compile options for crunchd's own targets, carried by an INTERFACE target
# instead of global flags, so third-party code is never built with -Werror.
#
#   crunch::compile_options   warnings as errors, C++20
#   CRUNCH_SANITIZE           "address,undefined" or "thread" (set by the asan/tsan presets);
#                             defines CRUNCH_SANITIZED (and CRUNCH_SANITIZED_THREAD for TSan)
#   CRUNCH_FUZZ               libFuzzer (the fuzz preset): everything is compiled with
#                             -fsanitize=fuzzer-no-link,address,undefined, and
#                             crunch::fuzz_target_options links a target with
#                             -fsanitize=fuzzer,address,undefined (libFuzzer's main)

add_library(crunch_compile_options INTERFACE)
add_library(crunch::compile_options ALIAS crunch_compile_options)

target_compile_features(crunch_compile_options INTERFACE cxx_std_20)
target_compile_options(crunch_compile_options INTERFACE
  -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  # Designated initializers that leave fields at their defaults are the idiom
  # for specs and options here, not a mistake.
  -Wno-missing-field-initializers)

set(CRUNCH_SANITIZE "" CACHE STRING "Sanitizers to build with: address,undefined | thread | empty")
if(CRUNCH_FUZZ)
  if(CRUNCH_SANITIZE AND NOT CRUNCH_SANITIZE STREQUAL "address,undefined")
    message(FATAL_ERROR "CRUNCH_FUZZ builds with address,undefined; CRUNCH_SANITIZE is "
            "'${CRUNCH_SANITIZE}'")
  endif()
  set(CRUNCH_SANITIZE "address,undefined")  # Shadows the cache entry in this build only.
  # Coverage instrumentation for libFuzzer in every crunchd object file...
  target_compile_options(crunch_compile_options INTERFACE -fsanitize=fuzzer-no-link)
  # ... and libFuzzer's runtime and main() only in the fuzz targets.
  add_library(crunch_fuzz_target_options INTERFACE)
  add_library(crunch::fuzz_target_options ALIAS crunch_fuzz_target_options)
  target_link_options(crunch_fuzz_target_options INTERFACE -fsanitize=fuzzer)
endif()
if(CRUNCH_SANITIZE)
  target_compile_options(crunch_compile_options INTERFACE
    -fsanitize=${CRUNCH_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(crunch_compile_options INTERFACE -fsanitize=${CRUNCH_SANITIZE})
  # Lets code and tests scale down their work (sanitizers make it 5-20x slower).
  target_compile_definitions(crunch_compile_options INTERFACE CRUNCH_SANITIZED=1)
  if(CRUNCH_SANITIZE MATCHES "thread")
    # GCC warns that TSan does not model std::atomic_thread_fence, which Asio's
    # headers use; the warning is about their code, not a finding.
    target_compile_options(crunch_compile_options INTERFACE -Wno-tsan)
    # Debian's protobuf, gRPC and Abseil are not built with TSan, and some of
    # their headers lay out classes differently when __SANITIZE_THREAD__ is set
    # (protobuf's MapFieldBase gains two members): crunchd's code must see the
    # layout the libraries were built with, or every map field crashes.
    # Instrumentation comes from -fsanitize=thread, not from this macro.
    target_compile_options(crunch_compile_options INTERFACE -U__SANITIZE_THREAD__)
    target_compile_definitions(crunch_compile_options INTERFACE CRUNCH_SANITIZED_THREAD=1)
  endif()
endif()
