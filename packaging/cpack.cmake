# Two Debian packages from one build (`cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr): one per install component. Files go to a package by the
# COMPONENT of their install() rule (packaging/README.md):
#   server -> modhost      the binary, modules, /etc/modhost, unit, logrotate snippet, docs
#   dev    -> modhost-dev  the SDK header, its pkg-config file, and anything else for module authors
# The `local` component (state directories and module links for prefix installs) is left out:
# the postinst does that for the package.
set(CPACK_PACKAGE_NAME modhost)
set(CPACK_PACKAGE_VENDOR modhost)
set(CPACK_PACKAGE_CONTACT "modhost maintainers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_COMPONENTS_ALL server dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS OFF)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME modhost)
set(CPACK_DEBIAN_SERVER_DESCRIPTION "Application server in C that hosts plugin modules
modhost loads handler modules (.so files built against one versioned SDK) and serves
their HTTP and WebSocket routes from one event loop per core. This package holds the
server, the first-party modules, their configuration and the systemd unit.")
set(CPACK_DEBIAN_SERVER_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "passwd, init-system-helpers")
set(CPACK_DEBIAN_SERVER_PACKAGE_SUGGESTS "logrotate")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/packaging/debian/conffiles
    ${CMAKE_BINARY_DIR}/packaging/debian/postinst
    ${CMAKE_BINARY_DIR}/packaging/debian/prerm
    ${CMAKE_BINARY_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME modhost-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION "SDK for modhost modules
The one public header (modhost/sdk.h) and the pkg-config file (modhost-sdk) to build
modhost modules out of tree.")
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjson-c-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "modhost (= ${PROJECT_VERSION}), pkg-config")
include(CPack)
