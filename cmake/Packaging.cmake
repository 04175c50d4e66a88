# Installation and the Debian package.
#
#   cmake --install build                   installs under /usr (the default prefix
#                                           here), /etc/crunchd and systemd's dirs
#   (cd build && cpack)                     build/packages/crunchd_<version>_amd64.deb
#
# Where things go (Debian's places):
#   /usr/bin/crunchd, /usr/bin/crunchctl
#   /usr/libexec/crunchd/crunch_worker      found by crunchd from /usr/bin (../libexec/crunchd)
#   /usr/lib/crunchd/plugins/{wordfreq,imagekit}.so   the example plugins (not loaded by default)
#   /etc/crunchd/crunchd.toml               systemd/crunchd.toml listening on the service socket
#   /usr/lib/systemd/system/crunchd.{service,socket}
#   /usr/lib/sysusers.d/crunchd.conf, /usr/lib/tmpfiles.d/crunchd.conf
#   /usr/include/crunch/v1/crunch.proto     the public API (protoc -I/usr/include), with
#   /usr/include/crunch/v1/crunch{,.grpc}.pb.h  its C++ code, compiled into
#   /usr/lib/<triplet>/libcrunch_proto.a    (link with grpc++ and protobuf)
#   /usr/share/doc/crunchd/                 README.md, operations.md, architecture.md
#   /usr/include/crunch/plugin.h            the plugin SDK (component plugin_sdk, below), with
#   /usr/share/cmake/crunch/                find_package(crunch CONFIG) and
#   /usr/share/pkgconfig/crunch-plugin.pc   pkg-config --cflags crunch-plugin
#
# The package's run-time dependencies come from dpkg-shlibdeps; its postinst
# creates the user, the runtime directory and reloads systemd, and enables or
# starts nothing.

# The units name /usr/bin/crunchd and /etc/crunchd, so /usr is the default
# prefix (once per build dir: a prefix set explicitly later is kept; other
# prefixes work for `cmake --install` but the units would need editing).
if(NOT DEFINED CACHE{CRUNCH_PREFIX_DEFAULTED})
  if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT OR CMAKE_INSTALL_PREFIX STREQUAL "/usr/local")
    set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install path prefix" FORCE)
  endif()
  set(CRUNCH_PREFIX_DEFAULTED ON CACHE INTERNAL "")
endif()
include(GNUInstallDirs)

set(CRUNCH_SYSCONF_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/crunchd)

# The installed configuration is the documented default file with one line
# active: the service runs as user crunchd, whose default address would be
# under /tmp, so it says where the service listens (crunchd.socket's path).
set(CRUNCH_SERVICE_SOCKET /run/crunchd/crunchd.sock)
file(READ ${PROJECT_SOURCE_DIR}/systemd/crunchd.toml crunch_toml)
set(crunch_listen_default "# listen = []\n")
string(FIND "${crunch_toml}" "${crunch_listen_default}" crunch_listen_at)
if(crunch_listen_at EQUAL -1)
  message(FATAL_ERROR "systemd/crunchd.toml has no '# listen = []' line to set for the service")
endif()
string(REPLACE "${crunch_listen_default}"
  "# The packaged service listens here (crunchd.socket passes this same socket).\nlisten = [\"unix:${CRUNCH_SERVICE_SOCKET}\"]\n"
  crunch_toml "${crunch_toml}")
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/packaging/crunchd.toml CONTENT "${crunch_toml}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/systemd/crunchd.toml)

install(TARGETS crunchd crunchctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS crunch_worker RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/crunchd)
# The example plugins (daemon/plugin/examples), ready to list in [plugins] paths.
install(TARGETS wordfreq imagekit LIBRARY DESTINATION lib/crunchd/plugins)
install(FILES ${CMAKE_BINARY_DIR}/packaging/crunchd.toml DESTINATION ${CRUNCH_SYSCONF_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/crunchd.service ${PROJECT_SOURCE_DIR}/systemd/crunchd.socket
        DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/crunchd.sysusers
        DESTINATION lib/sysusers.d RENAME crunchd.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/crunchd.tmpfiles
        DESTINATION lib/tmpfiles.d RENAME crunchd.conf)
# The public API: the .proto where Debian keeps .proto includes (next to the
# headers, as libprotobuf-dev does), and the C++ code generated from it by the
# same protoc and gRPC the package depends on.
install(FILES ${PROJECT_SOURCE_DIR}/rpc/crunch/v1/crunch.proto
              ${CMAKE_BINARY_DIR}/rpc/generated/crunch/v1/crunch.pb.h
              ${CMAKE_BINARY_DIR}/rpc/generated/crunch/v1/crunch.grpc.pb.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/crunch/v1)
install(TARGETS crunch_rpc_proto ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/operations.md
              ${PROJECT_SOURCE_DIR}/docs/architecture.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- The plugin SDK: component plugin_sdk ------------------------------------
#
# What a plugin author needs to build a plugin out of tree, and nothing else:
#   include/crunch/plugin.h                        the C ABI
#   share/cmake/crunch/crunchConfig.cmake          find_package(crunch CONFIG): the
#   share/cmake/crunch/crunchConfigVersion.cmake   crunch::plugin_api target and, from
#   share/cmake/crunch/CrunchPlugin.cmake          crunchd's own build, crunch_add_plugin()
#   share/pkgconfig/crunch-plugin.pc               pkg-config --cflags crunch-plugin
# Every path in these files is relative to the file itself, so the SDK can be
# installed under any prefix, on its own:
#   cmake --install build --component plugin_sdk --prefix ~/crunch-sdk
# `cmake --install build` without --component installs it along with the rest,
# and so does the .deb (a single package, which cpack fills with every component).
include(CMakePackageConfigHelpers)
set(crunch_sdk_cmake_dir ${CMAKE_INSTALL_DATADIR}/cmake/crunch)
set(crunch_sdk_pc_dir ${CMAKE_INSTALL_DATADIR}/pkgconfig)
configure_package_config_file(${PROJECT_SOURCE_DIR}/daemon/plugin/crunchConfig.cmake.in
  ${CMAKE_BINARY_DIR}/packaging/crunchConfig.cmake
  INSTALL_DESTINATION ${crunch_sdk_cmake_dir}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
# The SDK is one header: a build for any architecture can use it.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/crunchConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
# pkg-config expands ${pcfiledir} to the directory the .pc file was found in.
file(RELATIVE_PATH CRUNCH_PC_PREFIX ${CMAKE_INSTALL_PREFIX}/${crunch_sdk_pc_dir} ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" CRUNCH_PC_PREFIX "${CRUNCH_PC_PREFIX}")
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CRUNCH_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})  # Pinned by the builder: not relocatable.
else()
  set(CRUNCH_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/daemon/plugin/crunch-plugin.pc.in
  ${CMAKE_BINARY_DIR}/packaging/crunch-plugin.pc @ONLY)

install(FILES ${PROJECT_SOURCE_DIR}/daemon/plugin/include/crunch/plugin.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/crunch COMPONENT plugin_sdk)
install(FILES ${CMAKE_BINARY_DIR}/packaging/crunchConfig.cmake
              ${CMAKE_BINARY_DIR}/packaging/crunchConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/CrunchPlugin.cmake
        DESTINATION ${crunch_sdk_cmake_dir} COMPONENT plugin_sdk)
install(FILES ${CMAKE_BINARY_DIR}/packaging/crunch-plugin.pc
        DESTINATION ${crunch_sdk_pc_dir} COMPONENT plugin_sdk)

# --- CPack: one .deb -------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME crunchd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "crunchd developers <crunchd@localhost>")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# crunchd_0.1.0_amd64.deb
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/crunchd/crunchd")
# Shared-library dependencies are computed by dpkg-shlibdeps (package dpkg-dev);
# systemd is needed for the units, sysusers and tmpfiles.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
# The Python client (clients/python, installed with the rest) needs these;
# crunchd and crunchctl do not.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3, python3-grpcio, python3-protobuf")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(crunch_deb_dir ${PROJECT_SOURCE_DIR}/systemd/debian)
configure_file(${crunch_deb_dir}/conffiles.in ${CMAKE_BINARY_DIR}/packaging/conffiles @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${crunch_deb_dir}/postinst ${crunch_deb_dir}/prerm ${crunch_deb_dir}/postrm
  ${CMAKE_BINARY_DIR}/packaging/conffiles)
include(CPack)
