# Runs at install time (component `server`), with CMAKE_INSTALL_PREFIX as given to
# `cmake --install` (or CPack): writes 00-server.conf, the module conf files under
# modules-available, the systemd unit and the logrotate snippet for that prefix.
# Set by the install rule: MH_PACKAGING_DIR (this folder), MH_MODULE_CONFS (the shipped
# modules/NAME/NAME.conf), MH_USER_SETTING.
include(${MH_PACKAGING_DIR}/layout.cmake)
mh_layout("${CMAKE_INSTALL_PREFIX}")

function(mh_install_text dest text)
  set(path "$ENV{DESTDIR}${dest}")
  message(STATUS "Installing: ${path}")
  file(WRITE "${path}" "${text}")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}")
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()

function(mh_install_template template dest)
  file(READ "${MH_PACKAGING_DIR}/${template}" text)
  string(CONFIGURE "${text}" text @ONLY)
  mh_install_text("${dest}" "${text}")
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY "$ENV{DESTDIR}${MH_INSTALL_CONF_DIR}" "$ENV{DESTDIR}${MH_AVAILABLE_DIR}"
     "$ENV{DESTDIR}${MH_UNIT_DIR}" "$ENV{DESTDIR}${MH_LOGROTATE_DIR}")
mh_install_template(conf.d/00-server.conf.in ${MH_INSTALL_CONF_DIR}/00-server.conf)
mh_install_template(modhost.service.in ${MH_UNIT_DIR}/modhost.service)
mh_install_template(logrotate.in ${MH_LOGROTATE_DIR}/modhost)

# The module conf files carry the package's paths; for another prefix they point into it.
foreach(src ${MH_MODULE_CONFS})
  get_filename_component(name ${src} NAME)
  file(READ ${src} text)
  string(REPLACE "/usr/lib/modhost/modules" "${MH_INSTALL_MODULE_DIR}" text "${text}")
  string(REPLACE "/var/lib/modhost" "${MH_STATE_DIR}" text "${text}")
  string(REPLACE "/var/log/modhost" "${MH_LOG_DIR}" text "${text}")
  string(REPLACE "/run/modhost" "${MH_RUN_DIR}" text "${text}")
  mh_install_text(${MH_AVAILABLE_DIR}/${name} "${text}")
endforeach()
