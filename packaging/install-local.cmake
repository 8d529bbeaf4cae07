# Runs at install time (component `local`, not packaged): what the package's postinst does,
# for an install to a prefix: the state, log and run directories, and the default modules
# linked into conf.d as `modhost enable` would (an existing entry is left alone).
# Set by the install rule: MH_PACKAGING_DIR, MH_DEFAULT_ENABLED_MODULES.
include(${MH_PACKAGING_DIR}/layout.cmake)
mh_layout("${CMAKE_INSTALL_PREFIX}")

file(MAKE_DIRECTORY "$ENV{DESTDIR}${MH_STATE_DIR}" "$ENV{DESTDIR}${MH_LOG_DIR}"
     "$ENV{DESTDIR}${MH_RUN_DIR}")
foreach(name ${MH_DEFAULT_ENABLED_MODULES})
  set(link "$ENV{DESTDIR}${MH_INSTALL_CONF_DIR}/50-${name}.conf")
  if(NOT EXISTS "${link}" AND NOT IS_SYMLINK "${link}")
    message(STATUS "Linking: ${link} -> ../modules-available/${name}.conf")
    file(CREATE_LINK ../modules-available/${name}.conf "${link}" SYMBOLIC)
  endif()
endforeach()
