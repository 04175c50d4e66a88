# Installs crunch-client's node_modules from package-lock.json (`npm ci`), unless
# they were installed from this very lock file already; run by the node.deps test.
#
#   cmake -DNPM=/usr/bin/npm -P npm_ci.cmake      (from clients/node)
#
# npm records what it installed in node_modules/.package-lock.json; when that is
# newer than package-lock.json, the install is current and `npm ci` (which
# deletes node_modules first and takes ~10 s) is skipped.
if(NOT NPM)
  message(FATAL_ERROR "npm_ci.cmake: pass -DNPM=/path/to/npm")
endif()
set(lock "${CMAKE_CURRENT_LIST_DIR}/package-lock.json")
set(installed "${CMAKE_CURRENT_LIST_DIR}/node_modules/.package-lock.json")
if(EXISTS "${installed}" AND "${installed}" IS_NEWER_THAN "${lock}"
   AND NOT "${lock}" IS_NEWER_THAN "${installed}")
  message(STATUS "crunch-client: node_modules is current with package-lock.json; not reinstalling")
  return()
endif()
execute_process(
  COMMAND "${NPM}" ci --no-audit --no-fund
  WORKING_DIRECTORY "${CMAKE_CURRENT_LIST_DIR}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "crunch-client: `npm ci` in ${CMAKE_CURRENT_LIST_DIR} failed (${result}); "
                      "it needs the npm registry, or its packages in npm's cache")
endif()
